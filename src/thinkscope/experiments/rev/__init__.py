"""``experiment rev``: REV's evaluation (AUROC, DeLong, partial correlations), its success
criteria, sanity checks and figures."""
