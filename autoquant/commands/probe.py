"""`autoquant probe`: this node's inventory (or the node `--gpu`/`--hardware` describe), with the inference
engines installed here (autoquant.probes.engines, the discovery `serve` uses).

    autoquant probe                      # tables for people
    autoquant probe --json               # the Node record
    autoquant probe --save node.json     # for `autoquant plan --hardware node.json` elsewhere
    autoquant probe --gpu H100-SXM:8 --json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from autoquant.commands._options import add_hardware_options, resolve_node
from autoquant.errors import InputError, escape_controls
from autoquant.output import human_bytes, key_values, print_json, table
from autoquant.records import Node, to_dict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the node record as JSON")
    parser.add_argument("--save", metavar="FILE", help="write the node record (JSON) to FILE")
    parser.add_argument(
        "--no-measure", action="store_true",
        help="skip the CPU memory-bandwidth and matmul measurement (cached results are still used)",
    )
    add_hardware_options(parser)


def run(args: argparse.Namespace) -> int:
    node = resolve_node(args)
    if node.source == "probe":  # only this machine has engines to look for (never during plan: it is lazy)
        from autoquant.probes.engines import discover

        node = replace(node, engines=discover())
    if args.save:
        path = Path(args.save)
        try:
            path.write_text(json.dumps(to_dict(node), indent=2) + "\n")
        except OSError as exc:
            raise InputError(f"cannot write {args.save}: {exc.strerror or exc}") from None
    if args.json:
        print_json(node)
    else:
        print(render(node))
        if args.save:
            print(f"\nsaved to {args.save}")
    return 0


def render(node: Node) -> str:
    """The node as tables for people."""
    parts: list[str] = []
    head = [("source", node.source), ("host", node.hostname)]
    if node.driver_version or node.cuda_driver_version:
        head += [("NVIDIA driver", node.driver_version), ("CUDA (driver)", node.cuda_driver_version)]
    if node.cuda_visible_devices is not None:
        head.append(("CUDA_VISIBLE_DEVICES", node.cuda_visible_devices))
    if node.nodes != 1:
        head.append(("nodes", node.nodes))
    parts.append(key_values(head))

    if node.gpus:
        rows = [
            [
                g.index, g.name, human_bytes(g.memory_total_bytes),
                human_bytes(g.memory_free_bytes) if g.memory_free_bytes is not None else None,
                g.compute_capability, g.sm_count,
                f"gen{g.pcie_gen} x{g.pcie_width}" if g.pcie_gen and g.pcie_width else g.pcie_gen,
                g.power_limit_w,
                ",".join(s.profile for s in g.mig_slices) if g.mig_enabled else "off",
                g.numa_node, g.catalog_key,
            ]
            for g in node.gpus
        ]
        parts.append("GPUs\n" + table(rows, ["#", "name", "memory", "free", "CC", "SMs", "PCIe", "power W",
                                             "MIG", "NUMA", "catalog"]))
        if len(node.gpus) > 1 and node.topology:
            header = [""] + [f"GPU{i}" for i in range(len(node.gpus))]
            topo = [[f"GPU{i}", *row] for i, row in enumerate(node.topology)]
            parts.append("Interconnect (nvidia-smi topo vocabulary)\n" + table(topo, header))
        domains = "  ".join("[" + ",".join(map(str, d)) + "]" for d in node.nvlink_domains)
        parts.append(f"NVLink domains: {domains or '-'}")
    elif node.apple:
        a = node.apple
        parts.append("Apple Silicon\n" + key_values([
            ("chip", a.chip), ("unified memory", human_bytes(a.unified_memory_bytes) if a.unified_memory_bytes else None),
            ("GPU cores", a.gpu_cores), ("catalog", a.catalog_key),
        ]))
    else:
        parts.append("GPUs: none")

    c = node.cpu
    bandwidth = None
    if c.memory_bandwidth_gbps:
        how = [c.memory_bandwidth_source or ""]
        if c.memory_bandwidth_threads:
            how.append(f"read, {c.memory_bandwidth_threads} thread(s)")
        if c.memory_bandwidth_spread_gbps:
            how.append("runs {:.1f}-{:.1f}".format(*c.memory_bandwidth_spread_gbps))
        bandwidth = f"{c.memory_bandwidth_gbps:.1f} GB/s ({', '.join(h for h in how if h)})"
    matmul = f"{c.matmul_gflops:.0f} GFLOP/s fp32 ({c.matmul_gflops_source})" if c.matmul_gflops else None
    parts.append("CPU\n" + key_values([
        ("model", c.model), ("arch", c.arch),
        ("cores", f"{c.physical_cores or '-'} physical, {c.logical_cores or '-'} logical"),
        ("ISA flags", " ".join(c.flags) or None), ("memory bandwidth", bandwidth), ("matmul", matmul),
    ]))
    cg = node.cgroup
    parts.append("Memory and limits\n" + key_values([
        ("RAM total", human_bytes(node.ram_total_bytes) if node.ram_total_bytes else None),
        ("RAM available", human_bytes(node.ram_available_bytes) if node.ram_available_bytes else None),
        ("NUMA nodes", node.numa_nodes),
        ("cgroup", f"v{cg.version}" if cg.version else None),
        ("cgroup memory limit", human_bytes(cg.memory_limit_bytes) if cg.memory_limit_bytes else "none"),
        ("cgroup CPU limit", f"{cg.cpu_limit_cores:g} cores" if cg.cpu_limit_cores else "none"),
        ("model cache", node.disk_path),
        ("disk free", human_bytes(node.disk_free_bytes) if node.disk_free_bytes is not None else None),
    ]))
    parts.append(render_engines(node))
    if node.notes:
        parts.append("Notes\n" + "\n".join(f"- {n}" for n in node.notes))
    return "\n\n".join(parts)


def render_engines(node: Node) -> str:
    """The engines found where the node was probed (none for a described node), and those not found."""
    if node.source == "gpu-flag":
        return "Engines: not looked for (--gpu describes a machine; `autoquant probe` alone lists this one's)"
    if node.source != "probe" and not node.engines:
        return "Engines: none recorded (the file predates them, or none was found where it was probed)"
    lines = ["Engines" if node.source == "probe" else "Engines (where the node was probed)"]
    if node.engines:
        rows = [[e.label, f"{e.module} (module)" if e.module else e.program,
                 e.version or ("unknown" if e.usable else "-"), e.path, e.found_by] for e in node.engines]
        lines.append(table(rows, ["engine", "program", "version", "path", "found by"]))
        lines += [escape_controls(f"- {e.label}: {n}") for e in node.engines for n in e.notes]
    else:
        lines.append("none found")
    if node.source == "probe":
        from autoquant.probes.engines import env_var, installs

        found = {e.name for e in node.engines}
        missing = [i for _, i in installs() if i.name not in found]
        if missing:
            names = ", ".join(env_var(i.name).removeprefix(env_var("")) for i in missing)
            lines += [f"not found here: {', '.join(i.label for i in missing)}",
                      f"point AUTOQUANT_ENGINE_BIN_<NAME> ({names}) at one installed elsewhere, e.g. "
                      f"{env_var('vllm')}=/opt/venv-vllm/bin/vllm"]
    return "\n".join(lines)
