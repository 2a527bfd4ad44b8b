"""The evaluation's notes on the files' combination labels: what ``distgen.types.layout``'s label logic (``merged_labels``,
``foreign_combinations``, ``control_atom_labels``) finds, said. Both readers of a pair give them through ``combination_notes``
(``distgen.data.layout.read_pair`` from AnnData, ``distgen.evaluation.h5pair.read_pair_fast`` from h5py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from distgen.types.cells import COMBO
from distgen.types.layout import control_atom_labels, crossed_labels, foreign_combinations, merged_labels, rewritten_labels
from distgen.wording import first_of


def merged_note(groups: dict[str, list[str]], counts: Mapping[str, Mapping[str, int]], column: str) -> str:
    """What ``merged_labels`` found alike in the files of ``counts`` (``{file: {label: cells}}``, one file or several in the
    order to name them), with each label's cell count in each: said, not refused (one condition is how distgen reads such
    labels everywhere, ``docs/data.md``)."""
    names = list(counts)
    said = first_of(list(groups.items()), 3, "; ", lambda cg: " and ".join(
        f"{lab!r} ({' and '.join(str(int(counts[n][lab])) for n in names)} cells)" for lab in cg[1]) + f" as {cg[0]!r}")
    who = f"the {names[0]} file's obs[{column!r}] names" if len(names) == 1 else \
        f"the {', '.join(names[:-1])} and {names[-1]} files' obs[{column!r}] name"
    return (f"{who} one condition in several ways: {said}; each group is scored as one "
            "condition with the cells of all its labels (cell-eval scores each label as a perturbation of its own); relabel "
            "them if they are different conditions")


def foreign_note(found: dict[str, list[str]], column: str, name: str) -> str:
    """What ``foreign_combinations`` found in the ``name`` file, and the two fixes."""
    d, labels = next(iter(found.items()))
    more = "".join(f"; joined by {k!r}: {first_of(v, 3, render=repr)}" for k, v in list(found.items())[1:])
    return (f"the {name} file's perturbation(s) {first_of(labels, 5, render=repr)}{more} are scored as one perturbation each, but look like combinations "
            f"joined by {d!r} (each part is a measured gene or another perturbation of the file): as one perturbation, none of "
            "their atoms' genes is left out as a target gene, and a baseline fitted on --train cells reads each as never seen. "
            f"If they are combinations, relabel them with '+' in every file (adata.obs[{column!r}] = "
            f"adata.obs[{column!r}].astype(str).str.replace({d!r}, '+')) or record the delimiter in each "
            f"(adata.uns.setdefault('distgen', {{}})['combo_delimiter'] = {d!r})")


#: The order in which notes name the files of a pair (and the training file beside them).
FILE_ORDER = ("pred", "real", "training")


def combination_notes(sizes: Mapping[str, Mapping[str, int]], genes: Sequence[str], control: str, delimiters: Sequence[str],
                      controls: Sequence[str], column: str) -> list[str]:
    """Notes on the files' combination labels (``sizes``: ``{file: {label: cells}}``, files named as in ``FILE_ORDER``) that
    are read otherwise than cell-eval reads them: one condition written several ways (``merged_labels``; one note for all
    the files that write it alike, not one per file), one condition the prediction and the truth write otherwise (atoms in
    another order: ``crossed_labels``; otherwise, as spacing or an empty, repeated or control atom: ``rewritten_labels``), and, in the truth, labels that look like
    combinations joined by a separator no file records (``foreign_combinations``) and GEARS control atoms beside a measured
    gene's atom (``control_atom_labels``). Both readers give them (``distgen.evaluation.h5pair``)."""
    out = []
    files = sorted(sizes, key=lambda n: (FILE_ORDER.index(n) if n in FILE_ORDER else len(FILE_ORDER), n))
    merged = {n: merged_labels(sizes[n].keys(), control, delimiters, controls) for n in files}
    said: set[str] = set()
    for n in files:
        if merged[n] and n not in said:
            alike = [m for m in files if merged[m] == merged[n]]
            said.update(alike)
            out.append(merged_note(merged[n], {m: sizes[m] for m in alike}, column))
    if (crossed := crossed_labels(sizes, merged, control, delimiters, controls)):
        out.append(crossed_note(crossed, column))
    real = sizes.get("real")
    gene_set = set(map(str, genes))
    read = {k: v for k, v in control_atom_labels(real.keys() if real is not None else (), control, delimiters, controls).items()
            if any(a in gene_set for a in v.split(COMBO))}  # no measured gene: cell-eval leaves out what distgen does (none)
    # a truth's label with a control atom is control_atom_note's, whose fix relabels it in both files
    if (rewritten := [(p, r) for p, r in rewritten_labels(sizes, merged, control, delimiters, controls) if r not in read]):
        out.append(rewritten_note(rewritten, column))
    if real is not None and (found := foreign_combinations(real.keys(), genes, control, delimiters)):
        out.append(foreign_note(found, column, "real"))
    if read:
        out.append(control_atom_note(read))
    return out


def crossed_note(crossed: Sequence[tuple[str, str]], column: str) -> str:
    """What ``crossed_labels`` found: combinations the prediction and the truth write with their atoms in two orders."""
    pairs = first_of(crossed, 3, "; ", lambda pr: f"{pr[0]!r} in the prediction, {pr[1]!r} in the truth", enclosed=True)
    return (f"the pred and real files write {len(crossed)} combination(s) with their atoms in another order ({pairs}"
            "): distgen scores each as one condition; cell-eval matches labels as "
            f"written and pairs none of them, so relabel one file for cell-eval (obs[{column!r}])")


def control_atom_note(read: Mapping[str, str]) -> str:
    """What ``control_atom_labels`` found in the real file (``{label: condition}``, those with a measured gene's atom), and the
    fix for cell-eval."""
    label, condition = next(iter(read.items()))
    return (f"the real file's labels {first_of(list(read), 3, render=repr)} hold a control atom beside a "
            f"perturbation (GEARS) and are read without it, as {first_of(list(read.values()), 3, render=repr)}: their atoms' genes are their target "
            "genes, left out where a metric leaves target genes out. cell-eval matches a label as written against the "
            "genes, so it leaves out none for such labels and its pds_* of them can differ; relabel them in both files "
            f"({label!r} as {condition!r}) for cell-eval to score them as distgen does")


def rewritten_note(rewritten: Sequence[tuple[str, str]], column: str) -> str:
    """What ``rewritten_labels`` found: labels the prediction and the truth write otherwise (spacing, an empty, repeated or
    control atom)."""
    pairs = first_of(rewritten, 3, sep="; ", render=lambda pr: f"{pr[0]!r} in the prediction, {pr[1]!r} in the truth", enclosed=True)
    return (f"the pred and real files write {len(rewritten)} label(s) otherwise, by spacing or an empty, repeated or control "
            f"atom ({pairs}): "
            "distgen scores each as one condition; cell-eval matches labels as written and pairs none of them (cell-eval2's "
            "reference presets refuse such a pair: perturbation sets differ), so write the truth's labels in the pred file "
            f"for cell-eval (adata.obs[{column!r}] = adata.obs[{column!r}].astype(str).replace({dict(rewritten)!r}))")
