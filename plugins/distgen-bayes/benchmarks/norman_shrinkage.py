"""How much bayes_hier shrinks single effects on the bundled Norman data (one population per condition).

Fits bayes_hier (pca) on the combo_seen2 training cells with two values of ``priors.replicate_scale``
and prints, for the singles of the five held-out pairs, the projection ratio of the posterior mean
shift onto the observed shift (1 = no shrinkage), and the held-out pairs' mean-shift MSE next to the
additive prediction (sum of observed single shifts).

Usage::

    python plugins/distgen-bayes/benchmarks/norman_shrinkage.py
"""

import argparse
import json

import torch

from distgen.data import PerturbationData, make_split
from distgen.datasets import NORMAN_SCHEMA, norman_k562
from distgen.models.generator import build_model
from distgen.types import ConditionLabels


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)  # no options; --help without a fit
    torch.set_num_threads(1)
    data = PerturbationData.from_anndata(norman_k562(), NORMAN_SCHEMA)
    pairs=["KLF1+MAP2K6","KLF1+TGFBR2","MAP2K3+MAP2K6","MAP2K3+SLC38A2","MAPK1+TGFBR2"]
    split = make_split(data, "combo_seen2", seed=0, val_frac=0.0, test_conditions=pairs)
    train = data.table.subset(split.train)
    idx = data.info.perturbation_index()
    singles = sorted({a for p in pairs for a in p.split("+")})
    X = data.table.X
    cond = data.conditions
    ctrl = X[torch.as_tensor(cond=="control")].double().mean(0)
    emp = torch.stack([X[torch.as_tensor(cond==s)].double().mean(0)-ctrl for s in singles])
    truep = torch.stack([X[torch.as_tensor(cond==p)].double().mean(0)-ctrl for p in pairs])
    for rs in [0.5, 0.05]:
        m = build_model({"name":"bayes_hier","steps":3000,"num_samples":300,"priors":{"replicate_scale":rs}}, data.info).fit(train)
        lab = ConditionLabels.make([[idx[s]] for s in singles])
        est = m.posterior_intervals(lab)["mean"].double()
        ratio = (est*emp).sum(1)/(emp*emp).sum(1)
        labp = ConditionLabels.make([[idx[a] for a in p.split("+")] for p in pairs])
        estp = m.posterior_intervals(labp)["mean"].double()
        add = torch.stack([emp[singles.index(a)] for p in pairs for a in p.split("+")]).view(5,2,-1).sum(1)
        print(json.dumps({"replicate_scale": rs, "sigma_rep_mean": float(m.posterior.draws["sigma_rep"].mean()),
            "shrink_ratio_singles": [round(float(r),3) for r in ratio],
            "pair_mse_bayes": float(((estp-truep)**2).mean()), "pair_mse_additive": float(((add-truep)**2).mean()),
            "elbo_rel_change": m.diagnostics["elbo_rel_change"]}), flush=True)


if __name__ == "__main__":
    main()
