"""``transpert simulate``: write a simulated multi-cell-line atlas, or one challenge-sized file.

    transpert simulate -o DIR [--seed S] [--n-genes G] [--n-perturbations P] ...
    transpert simulate --large N_CELLS -o FILE.h5ad [--n-genes 18080] [--scale log1p] ...
    transpert simulate --generator lowrank -o DIR [--similarity 0.9,0.6,0.3] [--noise-lines 1] ...
"""

from __future__ import annotations

import argparse


def _similarity(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--similarity: expected numbers separated by commas, got {text!r}") from err


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--out", required=True,
                        help="output directory (atlas) or .h5ad file (with --large)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--generator", choices=("atlas", "lowrank"), default="atlas",
                        help="atlas generator: 'atlas' (gene programmes mixed per line) or 'lowrank' (the "
                             "second, independent one: a shared low-rank programme with line-specific gene "
                             "loadings, heavy tails, lines of different depth and coverage) (default: atlas)")
    parser.add_argument("--noise-lines", type=int, default=0,
                        help="--generator lowrank: extra reference lines whose effects are pure noise (default: 0)")
    parser.add_argument("--n-genes", type=int, default=None,
                        help="genes (default: 1500; 18080 with --large)")
    parser.add_argument("--n-perturbations", type=int, default=None,
                        help="perturbed genes of the panel (default: 60; 300 with --large)")
    parser.add_argument("--cells-per-perturbation", type=int, default=80,
                        help="mean cells per perturbation and line (default: 80)")
    parser.add_argument("--n-control-cells", type=int, default=None,
                        help="control cells per line (default: 400; 12.7%% of cells with --large)")
    parser.add_argument("--n-reference-lines", type=int, default=3, help="reference lines (default: 3)")
    parser.add_argument("--similarity", type=_similarity, default=[0.8, 0.6, 0.4],
                        help="similarity of each reference line's effects to the target's, one value "
                             "or one per reference, comma-separated (default: 0.8,0.6,0.4)")
    parser.add_argument("--reference-depth", type=float, default=10_000,
                        help="median UMI per cell of the reference lines (default: 10000)")
    parser.add_argument("--target-depth", default=None,
                        help="median UMI per cell of the target line: a number, or 'h1' for 50000 "
                             "(default: as the references)")
    parser.add_argument("--frac-no-effect", type=float, default=0.15,
                        help="share of perturbations without downstream effect (default: 0.15)")
    parser.add_argument("--effect-scale", type=float, default=1.0,
                        help="multiplies every downstream effect (default: 1)")
    large = parser.add_argument_group("one large file (benchmarks)")
    large.add_argument("--large", type=int, metavar="N_CELLS", default=None,
                       help="write ONE h5ad of N_CELLS cells chunk by chunk (e.g. 300000 for the "
                            "challenge's size) instead of an atlas")
    large.add_argument("--scale", choices=("counts", "log1p"), default="counts",
                       help="--large: raw counts or log1p-normalised values (default: counts)")
    large.add_argument("--density", type=float, default=0.11,
                       help="--large: fraction of non-zero entries (default: 0.11, as the H1 file)")
    large.add_argument("--depth", type=float, default=50_000,
                       help="--large: median UMI per cell (default: 50000, as H1)")
    large.add_argument("--order", choices=("shuffled", "grouped"), default="shuffled",
                       help="--large: cells of a perturbation interleaved or contiguous (default: shuffled)")
    large.add_argument("--chunk-rows", type=int, default=None, help="--large: rows per written chunk")
    large.add_argument("--compression", choices=("none", "gzip", "lzf"), default="none",
                       help="--large: h5py compression of X (default: none)")
    parser.add_argument("--threads", type=int, default=None, help="cores to use (default: all available)")


def run(args: argparse.Namespace) -> int:
    if args.large is not None:
        from transpert.data.simulate import write_large_dataset

        out = write_large_dataset(
            args.out, n_cells=args.large, n_genes=args.n_genes or 18_080,
            n_perturbations=args.n_perturbations or 300, n_control_cells=args.n_control_cells,
            scale=args.scale, density=args.density, depth=args.depth, order=args.order,
            chunk_rows=args.chunk_rows, seed=args.seed, threads=args.threads,
            compression=None if args.compression == "none" else args.compression,
            show_progress=None)
        print(f"wrote {out.path}: {out.n_cells} cells x {out.n_genes} genes, "
              f"{out.density:.3f} non-zero, {out.scale}, {out.seconds:.1f} s")
        return 0

    from transpert.data.simulate import simulate_atlas

    if args.generator == "lowrank":
        return _run_lowrank(args)
    target_depth = args.target_depth
    if target_depth is not None and target_depth.lower() != "h1":
        try:
            target_depth = float(target_depth)
        except ValueError:
            pass  # simulate_atlas names the bad value
    sim = args.similarity[0] if len(args.similarity) == 1 else args.similarity
    atlas = simulate_atlas(
        args.out, seed=args.seed, n_reference_lines=args.n_reference_lines, similarity=sim,
        n_genes=args.n_genes or 1500, n_perturbations=args.n_perturbations or 60,
        cells_per_perturbation=args.cells_per_perturbation,
        n_control_cells=args.n_control_cells or 400, reference_depth=args.reference_depth,
        target_depth=target_depth, frac_no_effect=args.frac_no_effect,
        effect_scale=args.effect_scale, show_progress=None)
    for name, path in atlas.paths.items():
        adata = atlas.lines[name]
        zeros = 1 - adata.X.nnz / (adata.n_obs * adata.n_vars)
        role = "target" if name == atlas.target_line else "reference"
        print(f"{path}: {role}, {adata.n_obs} cells x {adata.n_vars} genes, {zeros:.1%} zeros")
    print(f"{atlas.truth_path}: true effects of {len(atlas.perturbations)} perturbations per line")
    return 0


def _run_lowrank(args) -> int:
    from transpert._errors import TranspertInputError
    from transpert.data.simulate import simulate_lowrank

    relevance = args.similarity * args.n_reference_lines if len(args.similarity) == 1 else args.similarity
    if len(relevance) != args.n_reference_lines:
        raise TranspertInputError(f"--similarity: give one value or {args.n_reference_lines} (one per reference line)")
    target_depth = 20_000.0
    if args.target_depth is not None:
        try:
            target_depth = 50_000.0 if args.target_depth.lower() == "h1" else float(args.target_depth)
        except ValueError:
            raise TranspertInputError(f"--target-depth: a number or 'h1', got {args.target_depth!r}") from None
    atlas = simulate_lowrank(
        args.out, seed=args.seed, relevance=relevance, n_noise_lines=args.noise_lines,
        n_genes=args.n_genes or 1000, n_perturbations=args.n_perturbations or 60,
        cells_per_perturbation=args.cells_per_perturbation, n_control_cells=args.n_control_cells or 300,
        reference_depth=args.reference_depth, target_depth=target_depth, effect_scale=args.effect_scale)
    lines = atlas.truth.lines
    for name, path in atlas.paths.items():
        adata = atlas.lines[name]
        print(f"{path}: {lines.loc[name, 'kind']}, {adata.n_obs} cells x {adata.n_vars} genes, "
              f"relevance {lines.loc[name, 'similarity_to_target']:.2f}, "
              f"depth {lines.loc[name, 'depth_median']:.0f}")
    print(f"{atlas.truth_path}: true effects (low-rank generator)")
    return 0
