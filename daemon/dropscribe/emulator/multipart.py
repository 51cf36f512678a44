"""A small multipart/form-data reader for the OSS PostObject upload (``cgi`` is gone in 3.13)."""

from __future__ import annotations

import email.policy
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import BytesParser


@dataclass(frozen=True)
class FormField:
    """One part of a form, in the order it was sent (OSS requires ``file`` last)."""

    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def boundary_of(content_type: str) -> str | None:
    message = Message()
    message["content-type"] = content_type
    if message.get_content_type() != "multipart/form-data":
        return None
    return message.get_boundary()


def parse_form(content_type: str, body: bytes) -> list[FormField]:
    """Split a multipart/form-data body into its fields; raises ValueError if it is malformed."""
    boundary = boundary_of(content_type)
    if not boundary:
        raise ValueError("the body is not multipart/form-data with a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    # Prefixing CRLF lets every delimiter, including the first, be searched for as CRLF--boundary,
    # which cannot be confused with the same bytes inside a file.
    data = b"\r\n" + body
    marker = b"\r\n" + delimiter
    position = data.find(marker)
    if position < 0:
        raise ValueError("the multipart body has no opening boundary")
    position += len(marker)
    fields: list[FormField] = []
    while True:
        if data.startswith(b"--", position):
            return fields
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            raise ValueError("the multipart body ends inside a boundary line")
        start = line_end + 2
        end = data.find(marker, start)
        if end < 0:
            raise ValueError("the multipart body has no closing boundary")
        fields.append(_parse_part(data[start:end]))
        position = end + len(marker)


def _parse_part(part: bytes) -> FormField:
    if part.startswith(b"\r\n"):
        head, content = b"", part[2:]
    else:
        head, separator, content = part.partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("a multipart part has no header terminator")
    headers = BytesParser(policy=email.policy.HTTP).parsebytes(head + b"\r\n\r\n", headersonly=True)
    assert isinstance(headers, EmailMessage)
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise ValueError("a multipart part has no Content-Disposition")
    params = dict(disposition.params)
    name = params.get("name")
    if not name:
        raise ValueError("a multipart part has no field name")
    content_type = headers.get("content-type")
    return FormField(
        name=str(name),
        data=content,
        filename=str(params["filename"]) if "filename" in params else None,
        content_type=str(content_type) if content_type is not None else None,
    )
