"""Built-in dataset plugins (installed as ssvh_bench.datasets)."""
