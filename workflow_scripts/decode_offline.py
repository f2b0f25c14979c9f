from nrf.runlog import start

log = start(snakemake)
from nrf.decoding.offline import decode_offline  # noqa: E402
from nrf.decoding.scoring import score_reconstruction_files  # noqa: E402
from nrf.devices import resolve_device  # noqa: E402

p, i, o = snakemake.params, snakemake.input, snakemake.output
for source, recon in zip(p.sources, o.recon):
    decode_offline(
        i.decoder,
        i.prepared,
        recon,
        source=source,
        predictions_path=i.get(f"pred_{source}"),
        feature_space=p.feature_space,
        log=log,
    )
# every source of the subject scored together: the seen images' side once
score_reconstruction_files(
    list(o.recon),
    i.stimuli,
    i.features,
    list(o.metrics),
    device=resolve_device(p.device),
    allow_download=p.download_weights,
    log=log,
)
