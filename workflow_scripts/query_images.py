from nrf.runlog import start

log = start(snakemake)
from nrf.data.prepared import load_prepared  # noqa: E402
from nrf.volumes.images import export_images, select_images  # noqa: E402

p = snakemake.params
imageset = snakemake.wildcards.imageset
test_ids = load_prepared(snakemake.input.prepared, splits=("test",)).test.image_ids
n = p.n_test if imageset == "test" else p.n_category
ids = select_images(test_ids, imageset, n, simulation=p.simulation, subjects=p.subjects, seed=p.seed)
files = export_images(snakemake.input.stimuli, ids, snakemake.output[0])
log.info("%s: %d images -> %s", imageset, len(files), snakemake.output[0])
