"""Built-in method plugins (installed as ssvh_bench.methods)."""
