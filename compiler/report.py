"""Resource report of a chip image: per-core utilization, the compiler's
quantization/decay/placement record, and a mesh heat map (PNG).

Everything here reads the image alone (its memory writes and the compiler
report stored in its metadata), so ``neuromesh report`` works on any image
file, not only in the process that compiled it.
"""

from __future__ import annotations

import numpy as np

from neuromesh.chip import Region

__all__ = ["utilization", "compile_report", "mesh_heatmap", "RESOURCE_NAMES"]

#: The per-core resources reported, in table order.
RESOURCE_NAMES = ("neurons", "axons", "synapses", "fan-out")


def utilization(image) -> dict:
    """Per-core use of each resource: ``{name: (used int64 [n_cores],
    capacity)}`` for :data:`RESOURCE_NAMES`, plus ``"profiles"`` (distinct
    neuron profiles in use). Core ``k`` sits at ``x = k % cols, y = k // cols``.
    Reads only the words the image writes (cheap for any geometry).
    """
    from neuromesh.config import check
    words = check(image)
    g = image.geometry
    neur, axon = words[Region.NEURON], words[Region.AXON]

    def per_core(core, weights=None):
        return np.bincount(core, weights=weights, minlength=g.n_cores).astype(np.int64)

    pairs = np.unique(neur.core * g.n_profiles + neur["profile"])
    return {
        "neurons": (per_core(neur.core), g.n_neurons),
        "axons": (per_core(axon.core[axon["syn_len"] > 0]), g.n_axons),
        "synapses": (per_core(axon.core, axon["syn_len"]), g.n_synapses),
        "fan-out": (per_core(neur.core, neur["fanout_len"]), g.n_fanout),
        "profiles": (per_core(pairs // g.n_profiles), g.n_profiles),
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
    try:
        return _format_report(rep)
    except KeyError as e:
        problem = f"has no {e.args[0]!r}"
    except (TypeError, ValueError, IndexError, AttributeError) as e:
        problem = f"has a field of the wrong type or shape ({e})"
    from neuromesh.image import ImageError
    raise ImageError(f"meta.compiler {problem}: not a compiler report this neuromesh can "
                     f"read (the image itself is fine: neuromesh info shows it)")


def _format_report(rep) -> str:
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
    try:
        clusters = (image.meta.get("compiler") or {}).get("placement", {}).get("clusters", {})
        for k, v in clusters.items():
            names.setdefault((int(v[0]), int(v[1])), []).append(str(k))
    except (AttributeError, TypeError, ValueError, IndexError, KeyError):
        names = {}   # a malformed compiler report only loses the labels
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
    name = image.meta.get("name")
    fig.suptitle(title or f"{name if isinstance(name, str) else 'chip image'}: {g}",
                 fontsize=10)
    from neuromesh.files import atomic_write
    try:
        with atomic_write(path) as f:
            fig.savefig(f, dpi=110, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
