"""The service config and the per-folder rule files.

``model`` holds the typed settings; ``schema`` the one table of keys; ``yamlsrc`` reads YAML keeping line
numbers; ``validate`` turns a document into settings, collecting every problem; ``load`` is the entry
point (load_settings, check_config, resolve_api_key); ``rulefiles`` reads asr-rules.yaml files and keeps
them current while the service runs.
"""
