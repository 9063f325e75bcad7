"""`make bench`: the asset graph measured against a bare pandas + scikit-learn script."""
