"""Keys that must never reach a provider call from a request body or a variant's params.

litellm reads many body keys as arguments (``api_base``, ``api_key``, ``extra_headers``,
...): one of them in a body, or in a variant registered through an API, would send the
call, with the provider key, to another host. The URL, key and headers of a call always
come from the provider settings; these keys are dropped from every body, on every path.
"""

from __future__ import annotations

from typing import Any

UNSAFE_KEYS = frozenset({
    "api_base", "base_url", "api_key", "api_version", "host", "url", "endpoint",
    "organization", "custom_llm_provider", "extra_headers", "headers", "timeout",
    "num_retries", "max_retries", "azure_ad_token", "aws_access_key_id",
    "aws_secret_access_key", "aws_session_token", "aws_region_name", "vertex_project",
    "vertex_location", "vertex_credentials", "litellm_params", "metadata_api_base",
    "fallbacks", "proxy", "http_client", "client",
})  # fmt: skip


def safe_body(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without the unsafe keys (a copy when any had to go)."""
    if UNSAFE_KEYS.isdisjoint(body):
        return body
    return {k: v for k, v in body.items() if k not in UNSAFE_KEYS}
