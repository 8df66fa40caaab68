"""`gencli evaluate` on the GAN families: FID and KID (Heusel et al. 2017; Binkowski et al. 2018) with the
standard Inception-v3 features, and for digit models the spread and confidence of gencli's classifier.

CycleGAN: each domain's test images are translated and compared with the other domain's training images;
the untranslated test images, compared the same way, are the baseline a model must beat. StyleGAN:
samples (seeds 0, 1, ...; a conditional model's classes in turn) against a fixed subset of the training
images.
"""

from __future__ import annotations

from pathlib import Path

from gencli import distributed
from gencli.data import IDX_DATASETS, load_training_images, resolve_data_path
from gencli.errors import OptionError
from gencli.inference import evaluation
from gencli.metrics import load_digit_classifier, load_inception


SAMPLES = 1000  # stylegan: samples and training images compared by default: minutes on a CPU


def evaluate_gan(model, meta: dict, *, data: str | None = None, data_dir: str | Path | None = None,
                 inception: str | Path | None = None, samples: int = SAMPLES, reference: int = SAMPLES,
                 max_images: int | None = None, truncation: float = 1.0, precision: str = "auto",
                 progress=None) -> dict:
    """The scores of a cyclegan or stylegan `model` opened with its metadata `meta` (see module doc).
    `data`: the data set (default: the one the model was trained on). stylegan: `samples` against
    `reference` training images; cyclegan: at most `max_images` images of each folder (default all).
    FID is biased by the number of images (lower with more), so scores compare at equal counts, which
    the result holds (n_samples, n_reference; n_test_a, n_train_b, ...). `progress(stage, done, total)`."""
    device = next(model.parameters()).device
    net = load_inception(inception, device=device)
    cache = evaluation.feature_cache_dir()
    dataset = data or meta["extra"].get("dataset")
    if meta["family"] == "cyclegan":
        if dataset is None:
            raise OptionError("this cyclegan does not name its data set; pass --data NAME|DIR")
        root = resolve_data_path(dataset, data_dir)
        precision = distributed.resolve_precision(precision, device)[0]
        if max_images is not None and max_images < 2:
            raise OptionError(f"--max-images must be at least 2, got {max_images}")
        return {"data": str(root), **evaluation.evaluate_translation(model, root, net, precision=precision,
                                                                     cache_dir=cache, progress=progress,
                                                                     max_images=max_images)}
    if samples < 2 or reference < 2:
        raise OptionError("--samples and --reference must be at least 2")
    if meta["family"] == "stylegan2":  # an imported network: its training images are not at hand
        if dataset is None:
            raise OptionError("this network records no data set: pass --data DIR, a folder of images to compare with")
        resolution = model.config.img_resolution
    else:
        dataset, resolution = dataset or "mnist", model.config.resolution
    images = evaluation.reference_subset(load_training_images(dataset, data_dir, resolution), reference)
    classifier = load_digit_classifier(device=device) if dataset == "mnist" and dataset in IDX_DATASETS else None
    return {"data": dataset, **evaluation.evaluate_generator(model, images, net, n_samples=samples,
                                                             truncation=truncation, classifier=classifier,
                                                             cache_dir=cache, progress=progress)}
