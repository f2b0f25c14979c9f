# Names and input functions of the decoding rules (rules/decoding.smk), kept
# apart from the rules as the linter asks.

DECODING = config["decoding"]
DECODER = config["decoder"]
MEASURED = "measured"
DECODE_SOURCES = [MEASURED] + MODELS


wildcard_constraints:
    source="|".join(DECODE_SOURCES),
    backend="offline|mindeye2",


def decoding_metrics(source):
    """Per-subject metric CSVs of one source, in SUBJECTS order ([] if decoding: none)."""
    if DECODING == "none":
        return []
    return [
        f"results/{DATASET}/decoding/{DECODING}/metrics/{source}/{s}.csv"
        for s in SUBJECTS
    ]


def all_decoding_metrics():
    return [path for source in DECODE_SOURCES for path in decoding_metrics(source)]


def figure3_subject():
    return SUBJECTS[0]


def figure3_reconstructions(wildcards):
    """Reconstructions Figure 3 shows, by source ({} if decoding: none)."""
    if DECODING == "none":
        return {}
    return {
        source: f"results/{DATASET}/decoding/{DECODING}/{source}/{figure3_subject()}.hdf5"
        for source in DECODE_SOURCES
    }


def figure3_outputs():
    if DECODING == "none":
        return []
    return [f"results/{DATASET}/figures/figure3.png"]


def get_decode_inputs(wildcards):
    """The prepared subject, and the model's predictions unless source is measured."""
    inputs = {"prepared": prepared(wildcards.subject)}
    if wildcards.source != MEASURED:
        inputs["predictions"] = (
            f"results/{DATASET}/predictions/{wildcards.source}/{wildcards.subject}.hdf5"
        )
    return inputs


def get_offline_subject_inputs(wildcards):
    """The subject's decoder and prepared file, and every model's predictions."""
    inputs = {
        "decoder": f"results/{DATASET}/decoding/offline/decoders/{wildcards.subject}.hdf5",
        "prepared": prepared(wildcards.subject),
    }
    inputs.update(
        {
            f"pred_{model}": f"results/{DATASET}/predictions/{model}/{wildcards.subject}.hdf5"
            for model in MODELS
        }
    )
    return inputs


FIGURES += figure3_outputs()
