"""LangChain's ChatOpenAI through the sidecar, as the README shows it.

The ``promptlab`` field must travel in ``extra_body``: ``model_kwargs`` puts keys at the
top level of the SDK call, where the openai SDK rejects an unknown argument.
"""

from __future__ import annotations

from conftest import MakeSidecar
from langchain_openai import ChatOpenAI


async def test_chat_openai_with_extra_body_is_routed(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    llm = ChatOpenAI(
        base_url=sidecar.base_url,
        api_key="unused",  # type: ignore[arg-type]
        model="promptlab/summarize",
        max_retries=0,
        extra_body={"promptlab": {"variables": {"code": "def f(): pass"}, "subject": "lc-user"}},
    )
    reply = await llm.ainvoke("Keep it short.")

    assert reply.content
    [sent] = sidecar.upstream.requests
    contents = [m["content"] for m in sent.body["messages"]]
    assert "def f(): pass" in " ".join(contents)  # the variant's template was rendered
    assert contents[-1] == "Keep it short."  # the app's message comes after the variant's
    assert "promptlab" not in sent.body  # the sidecar's field never reaches the provider
    [event] = await sidecar.wait_events("execution.completed", 1)
    assert event.prompt_id == "summarize" and event.subject == "lc-user"  # type: ignore[attr-defined]
    assert reply.response_metadata.get("id") in (None, event.execution_id)  # type: ignore[attr-defined]
