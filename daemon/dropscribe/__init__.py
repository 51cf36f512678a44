"""dropscribe: watched inbox folders in, Qwen3-ASR transcripts out."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dropscribe")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["__version__"]
