"""`autoquant validate --reference URL --candidate URL --dataset FILE [--use-case code]`: is the candidate's
quality close enough to the reference's on your text? Exit 0 pass, 1 fail, 2 an error.

`--reference-gguf A.gguf --candidate-gguf B.gguf` starts the two llama-cpp-python servers itself.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from autoquant.argtypes import bounded, positive_float

FAIL_EXIT = 1
USE_CASES = ("chat", "code", "medical", "summarization", "chat_general", "code_generation", "medical_legal")


def add_gate_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """Options shared with `serve --gate-on`."""
    parser.add_argument("--dataset", metavar="FILE", required=not prefix,
                        help="your text: JSONL with a 'text' field per line, or a plain-text file")
    parser.add_argument(f"--{prefix}use-case", dest=f"{prefix.replace('-', '_')}use_case", choices=USE_CASES,
                        default=None, help="limits from the use case (default chat: +0.3 ppl, KL 0.1)")
    parser.add_argument("--max-ppl-delta", type=positive_float, default=None,
                        help="pass only if perplexity rises by less than this")
    parser.add_argument("--max-kl", type=positive_float, default=None,
                        help="pass only if the mean KL (lower bound) is below this")
    parser.add_argument("--window", type=bounded("context_tokens", integer=True), default=512, help="tokens per window; its second half is "
                        "scored (default 512)")
    parser.add_argument("--max-windows", type=bounded("requests", integer=True), default=8, help="windows scored at most (default 8)")
    parser.add_argument("--top-k", type=bounded("top_k", integer=True), default=20,
                        help="log-probabilities per token asked of each server (default 20, a default vLLM's most; vLLM: at most "
                        "its --max-logprobs)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--reference", metavar="URL", help="the server to compare with (e.g. the 16-bit model)")
    g.add_argument("--reference-gguf", metavar="FILE", help="start llama-cpp-python on this GGUF as the reference")
    g2 = parser.add_mutually_exclusive_group()
    g2.add_argument("--candidate", metavar="URL", help="the server under test")
    g2.add_argument("--candidate-gguf", metavar="FILE", help="start llama-cpp-python on this GGUF as the candidate")
    add_gate_options(parser)
    parser.add_argument("--threads", type=bounded("cpu_cores", integer=True), default=None, help="--*-gguf: CPU threads per server")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _server(url: str | None, gguf: str | None, n_ctx: int, threads: int | None, stack: contextlib.ExitStack):
    from autoquant.servers import connect
    from autoquant.validate.local import gguf_server

    if gguf:
        return stack.enter_context(gguf_server(gguf, n_ctx, threads))
    return connect(url)


def check(reference, candidate, args: argparse.Namespace, progress: bool):
    """Validate `candidate` against `reference` with the gate options; the Result."""
    from autoquant.validate.dataset import load_text
    from autoquant.validate.run import thresholds_for, validate

    text = load_text(args.dataset)
    th = thresholds_for(getattr(args, "use_case", None) or getattr(args, "gate_use_case", None),
                        args.max_ppl_delta, args.max_kl)

    def show(done: int, total: int) -> None:
        if progress:
            print(f"\rscored window {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    return validate(reference, candidate, text, th, window=args.window, max_windows=args.max_windows,
                    top_k=args.top_k, progress=show)


def describe(result) -> list[str]:
    f, th, v = result.figures, result.thresholds, result.verdict
    ref, cand = result.reference, result.candidate
    lines = [
        f"reference: {ref['model']} ({ref['engine']}) at {ref['url']}",
        f"candidate: {cand['model']} ({cand['engine']}) at {cand['url']}",
        f"scored: {f.tokens_scored} tokens in {f.windows} windows ({f.bytes_scored} bytes), top-{f.top_k}",
        f"perplexity: reference {f.ppl_reference:.4f}, candidate {f.ppl_candidate:.4f} "
        f"(+{f.ppl_delta:.4f}, x{f.ppl_ratio:.4f})" if f.ppl_delta >= 0 else
        f"perplexity: reference {f.ppl_reference:.4f}, candidate {f.ppl_candidate:.4f} "
        f"({f.ppl_delta:.4f}, x{f.ppl_ratio:.4f})",
        f"bits per byte: reference {f.bpb_reference:.4f}, candidate {f.bpb_candidate:.4f}",
        f"KL (lower bound, nats): mean {f.kl_mean:.4g}, p50 {f.kl_p50:.4g}, p90 {f.kl_p90:.4g}, p99 {f.kl_p99:.4g}, "
        f"max {f.kl_max:.4g}",
        f"same top-1 token: {f.same_top1:.1%}",
        f"delta p (reference - candidate): mean {f.dp_mean:+.4f}, rms {f.dp_rms:.4f}, p1 {f.dp_p1:+.4f}, "
        f"p99 {f.dp_p99:+.4f}",
        f"limits ({th.source}): perplexity +{th.max_ppl_delta:g}, mean KL {th.max_kl:g}",
    ]
    lines += [f"note: {n}" for n in result.notes]
    lines.append("PASS" if v.passed else "FAIL: " + "; ".join(v.reasons))
    return lines


def run(args: argparse.Namespace) -> int:
    from autoquant.errors import UsageError
    from autoquant.output import print_json
    from autoquant.records.serde import to_dict

    if not (args.reference or args.reference_gguf) or not (args.candidate or args.candidate_gguf):
        raise UsageError("give a reference (--reference URL or --reference-gguf FILE) and a candidate "
                         "(--candidate URL or --candidate-gguf FILE)")
    n_ctx = args.window + 16
    with contextlib.ExitStack() as stack:
        reference = _server(args.reference, args.reference_gguf, n_ctx, args.threads, stack)
        candidate = _server(args.candidate, args.candidate_gguf, n_ctx, args.threads, stack)
        result = check(reference, candidate, args, progress=not args.json and sys.stderr.isatty())
    if args.json:
        print_json(to_dict(result))
    else:
        print("\n".join(describe(result)))
    return 0 if result.verdict.passed else FAIL_EXIT
