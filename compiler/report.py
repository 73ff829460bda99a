"""Resource report of a chip image: per-core utilization, the compiler's
quantization/decay/placement record, and a mesh heat map (PNG).

Everything here reads the image alone (its memory writes and the compiler
report stored in its metadata), so ``neuromesh report`` works on any image
file, not only in the process that compiled it.
"""

from __future__ import annotations

import numpy as np

from neuromesh.chip import Region, core_xy, unpack_address

__all__ = ["utilization", "compile_report", "mesh_heatmap", "RESOURCE_NAMES"]

#: The per-core resources reported, in table order.
RESOURCE_NAMES = ("neurons", "axons", "synapses", "fan-out")


def _written(image, region) -> np.ndarray:
    """Boolean ``[n_cores, size]``: which words of ``region`` the image writes."""
    g = image.geometry
    core, reg, offset = unpack_address(image.addresses)
    mask = np.zeros((g.n_cores, g.region_size(region)), dtype=bool)
    sel = reg == region
    x, y = core_xy(core[sel])
    mask[y * g.cols + x, offset[sel]] = True
    return mask


def utilization(image) -> dict:
    """Per-core use of each resource: ``{name: (used int64 [n_cores],
    capacity)}`` for :data:`RESOURCE_NAMES`, plus ``"profiles"`` (distinct
    neuron profiles in use). Core ``k`` sits at ``x = k % cols, y = k // cols``.
    """
    from neuromesh.config import decode
    cfg = decode(image)
    g = image.geometry
    neur, axon = cfg[Region.NEURON], cfg[Region.AXON]
    written = _written(image, Region.NEURON)
    return {
        "neurons": (written.sum(axis=1), g.n_neurons),
        "axons": ((axon["syn_len"] > 0).sum(axis=1), g.n_axons),
        "synapses": (axon["syn_len"].sum(axis=1), g.n_synapses),
        "fan-out": (neur["fanout_len"].sum(axis=1), g.n_fanout),
        "profiles": (np.array([np.unique(neur["profile"][k][written[k]]).size
                               for k in range(g.n_cores)]), g.n_profiles),
    }


def compile_report(image) -> str:
    """The compiler's report stored in a chip image, as printable text:
    per projection the weight quantization, per population its scale,
    decays (with their error against the float retention), latency and
    cores, each population's spike and reset conventions, the bias neurons,
    and the placement cost against row-major."""
    rep = image.meta.get("compiler")
    if not rep:
        return "(no compiler report: this image was not compiled)"
    lines = [f"{'projection':<24} {'w_shift':>7} {'max |err|':>10} {'rms rel err':>11} "
             f"{'flushed':>8}"]
    for name, q in rep["quantization"].items():
        lines.append(f"{name:<24} {q['w_shift']:>7} {q['max_abs_error']:>10.3g} "
                     f"{q['rms_rel_error']:>11.3%} {q['flushed']:>8}")
    lines.append("")
    decays = rep.get("decays", {})
    latency = rep.get("latency", {})
    lines.append(f"{'population':<24} {'neurons':>7} {'scale':>10} {'du':>5} {'dv':>5} "
                 f"{'u err':>8} {'v err':>8} {'latency':>7}  cores (x,y: neurons)")
    for pop, size in rep["populations"].items():
        # v = [x, y, start, stop(, first neuron on the core: images since packing)]
        where = [f"{v[0]},{v[1]}: {v[3] - v[2]}" + (f" at neuron {v[4]}" if v[4:] > [0] else "")
                 for k, v in rep["placement"]["clusters"].items() if k.rsplit("[", 1)[0] == pop]
        d = decays.get(pop)
        dec = (f"{d['du']:>5} {d['dv']:>5} {d['u_error']:>8.1e} {d['v_error']:>8.1e}" if d
               else f"{'':>5} {'':>5} {'':>8} {'':>8}")
        lines.append(f"{pop:<24} {size:>7} {rep['scales'][pop]:>10.4g} {dec} "
                     f"{latency.get(pop, 0):>7}  {'; '.join(where)}")
    conventions = rep.get("conventions", {})
    if conventions:
        lines.append("")
        lines.append(f"{'population':<24} conventions")
        for pop, text in conventions.items():
            lines.append(f"{pop:<24} {text}")
    bias = rep.get("bias_neurons", {})
    if bias:
        lines.append("bias neurons (always-on source, one per core that needs it): "
                     + "; ".join(f"{xy}: neuron {k}" for xy, k in bias.items()))
    p = rep["placement"]
    lines.append(f"placement: {p['cost']:.1f} expected packet-hops/step "
                 f"(row-major: {p['row_major_cost']:.1f})")
    if rep.get("readouts"):
        lines.append(f"readouts (probe v): {', '.join(rep['readouts'])}")
    return "\n".join(lines)


def mesh_heatmap(image, path, *, title: str | None = None):
    """Write a PNG of the mesh: one panel per resource, each core coloured by
    the fraction it uses and labelled with the count and its populations."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = image.geometry
    use = utilization(image)
    names = {}
    rep = image.meta.get("compiler") or {}
    for k, v in rep.get("placement", {}).get("clusters", {}).items():
        names.setdefault((v[0], v[1]), []).append(k)
    fig, axes = plt.subplots(1, len(RESOURCE_NAMES),
                             figsize=(3.2 * len(RESOURCE_NAMES), 0.6 + 2.8 * g.rows / g.cols + 0.6),
                             squeeze=False)
    for ax, res in zip(axes[0], RESOURCE_NAMES):
        used, cap = use[res]
        frac = (used / cap).reshape(g.rows, g.cols)
        im = ax.imshow(frac, vmin=0, vmax=1, cmap="viridis", origin="upper")
        ax.set_title(f"{res} (of {cap} per core)", fontsize=9)
        ax.set_xticks(range(g.cols))
        ax.set_yticks(range(g.rows))
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        for k in range(g.n_cores):
            x, y = k % g.cols, k // g.cols
            label = f"{int(used[k])}"
            if res == "neurons" and names.get((x, y)):
                label += "\n" + "\n".join(names[(x, y)][:3])
            ax.text(x, y, label, ha="center", va="center", fontsize=7,
                    color="white" if frac[y, x] < 0.6 else "black")
    fig.colorbar(im, ax=axes[0].tolist(), fraction=0.02, label="fraction used")
    fig.suptitle(title or f"{image.meta.get('name', 'chip image')}: {g}", fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
