"""The paper's ablation tables as one resumable job (``python -m recipes.paper_tables``): the
orchestration behind that entry point (train, generate, evaluate, report). Each run's training saves
its convergence points with ``mapper.training.epoch_exports.EpochExports``.

    grid.py          the tables' rows: (table, row, variant) and each variant's ablation overlays
    scales.py        what differs between the toy, paper and quick grids (recipe, data, decoding, metrics)
    options.py       the job's settings, every one checked before any work (one-line errors)
    run_config.py    the per-run training overlay (seed, folders, devices, epoch exports)
    toy_data.py      the toy world and its cache, built once before the runs when absent
    testset.py       the test clips, their reference audio and the generation CSV (shared by all runs)
    markers.py       atomic done markers: what a rerun skips
    steps.py         one run's steps: train (subprocess), generate, evaluate, the convergence points
    runner.py        the grid: runs in order, failures collected
    progress.py      the progress lines and their ETA
    columns.py       the tables' columns per scale and where each value comes from
    report.py        tables.md / tables.json: mean ± std over seeds
    figure.py        the convergence figure (autoregressive vs Diff-Mapper), PNG
    outputs.py       the tables, the figure and their notes, once every run is done
    plan.py, cost.py --print-plan: every run, its configs, FLOPs per sample and estimated GPU hours
    paper_numbers.py the paper's own numbers (empty: not verified, see there)
"""
