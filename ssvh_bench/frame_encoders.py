"""Frame encoders for ``ssvh-bench extract``: the CNN features the SSVH datasets were made with, and CLIP.

``vgg16-fc7`` (4,096-d, as FCVID and YFCC) and ``resnet50-pool5`` (2,048-d, as ActivityNet) are written here
as plain torch modules whose parameter names equal torchvision's, so torchvision's ImageNet weights load
unchanged: from torch hub's cache (``torch.hub.get_dir()/checkpoints``, where ``torchvision`` saves them) or a
file the user gives. Preprocessing is torchvision's: shorter side resized to 256 (bilinear, antialiased),
centre crop 224, ImageNet mean and standard deviation (on tensors, so values differ from PIL's resize by
rounding only). ``clip`` (512-d, ViT-B-32) needs the ``open_clip`` package. Nothing is ever downloaded;
``weights="random"`` gives seeded random weights, for tests and throughput measurements only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .errors import ConfigError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
RESIZE, CROP = 256, 224
RANDOM = "random"
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    """torchvision's ``vgg16`` (names ``features.N``, ``classifier.N``); ``forward`` returns fc7 after its ReLU."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in VGG16_LAYERS:
            if width == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(width), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = int(width)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 4096),
                                        nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 1000))
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = torch.flatten(self.avgpool(self.features(images)), 1)
        return self.classifier[:5](pooled)  # fc6, ReLU, dropout (inactive in eval), fc7, ReLU


class Bottleneck(nn.Module):
    """torchvision's ResNet bottleneck (stride on the 3x3 convolution, "ResNet v1.5")."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False),
                                         nn.BatchNorm2d(planes * 4))
                           if stride != 1 or inplanes != planes * 4 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    """torchvision's ``resnet50`` (names ``conv1``, ``layerN.M...``, ``fc``); ``forward`` returns pool5 (2,048)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        for index, (planes, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), 1):
            layer = [Bottleneck(inplanes, planes, stride)] + [Bottleneck(planes * 4, planes) for _ in range(blocks - 1)]
            setattr(self, f"layer{index}", nn.Sequential(*layer))
            inplanes = planes * 4
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2048, 1000)
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


@dataclass(frozen=True)
class EncoderSpec:
    """A frame encoder's build recipe: its module, output size, torchvision's weight file names, preprocessing."""

    build: Callable[[], nn.Module]
    dim: int
    weight_files: tuple[str, ...]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"


ENCODERS: dict[str, EncoderSpec] = {
    "vgg16-fc7": EncoderSpec(VGG16, 4096, ("vgg16-397923af.pth",)),
    # IMAGENET1K_V1 first: the weights of the era the ActivityNet features come from
    "resnet50-pool5": EncoderSpec(ResNet50, 2048, ("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth")),
}
CLIP_MODEL, CLIP_PRETRAINED, CLIP_DIM = "ViT-B-32", "openai", 512
ENCODER_NAMES = (*ENCODERS, "clip")


class FrameEncoder:
    """Frames (uint8 [n, H, W, 3], RGB) -> features float32 [n, dim], on ``device``, in eval mode."""

    def __init__(self, name: str, model: nn.Module, dim: int, weights: str, *, device: str, crop: int = CROP,
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                 interpolation: str = "bilinear", resize: int | None = None) -> None:
        self.name, self.dim, self.weights, self.device, self.crop = name, dim, weights, device, crop
        self.resize = resize if resize is not None else round(crop * RESIZE / CROP)
        self.interpolation = interpolation
        self.model = model.to(device).eval()
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [n, H, W, 3] -> normalised float [n, 3, crop, crop]: shorter side to ``resize``, centre crop."""
        images = frames.to(self.device).permute(0, 3, 1, 2).float() / 255.0
        height, width = images.shape[-2:]
        scale = self.resize / min(height, width)
        size = (max(self.resize, round(height * scale)), max(self.resize, round(width * scale)))
        images = F.interpolate(images, size=size, mode=self.interpolation, align_corners=False, antialias=True)
        top, left = (size[0] - self.crop) // 2, (size[1] - self.crop) // 2
        images = images[:, :, top : top + self.crop, left : left + self.crop]
        return (images - self.mean) / self.std

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Preprocessed images [n, 3, crop, crop] -> features float32 [n, dim] on the CPU."""
        return self.model(images).float().cpu()


def weight_path(name: str, weights: str | None) -> Path | None:
    """The weight file to load: ``weights`` itself, else torchvision's file in torch hub's cache (None: random)."""
    if weights == RANDOM:
        return None
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"--weights {path}: no such file")
        return path
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    spec = ENCODERS[name]
    for file in spec.weight_files:
        if (folder / file).is_file():
            return folder / file
    raise ConfigError(f"{name}: torchvision's weights {spec.weight_files[0]} are not in {folder}; put them there "
                      f"(torchvision saves them there on first use) or pass --weights PATH (never downloaded here)")


def load_encoder(name: str, *, weights: str | None = None, device: str = "cpu", crop: int = CROP,
                 seed: int = 0) -> FrameEncoder:
    """The frame encoder ``name`` with its weights (see ``weight_path``; ``"random"``: seeded random weights)."""
    if name == "clip":
        return _load_clip(weights, device, crop)
    if name not in ENCODERS:
        raise ConfigError(f"unknown encoder {name!r}; use {', '.join(ENCODER_NAMES)}")
    spec = ENCODERS[name]
    path = weight_path(name, weights)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.build()
    if path is not None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except (RuntimeError, OSError, ValueError) as error:
            raise ConfigError(f"{path} is not torchvision's {name.split('-')[0]} state dict: {str(error).splitlines()[0]}") from None
    return FrameEncoder(name, model, spec.dim, RANDOM if path is None else str(path), device=device, crop=crop,
                        mean=spec.mean, std=spec.std, interpolation=spec.interpolation)


def _load_clip(weights: str | None, device: str, crop: int) -> FrameEncoder:
    try:
        import open_clip
    except ImportError:
        raise ConfigError("the clip encoder needs open_clip: pip install 'ssvh-bench[clip]'") from None
    if weights == RANDOM:
        model = open_clip.create_model(CLIP_MODEL, pretrained=None)
    else:  # open_clip's own cache (or a checkpoint file); open_clip downloads only what is not cached
        model = open_clip.create_model(CLIP_MODEL, pretrained=weights or CLIP_PRETRAINED)
    return FrameEncoder("clip", _ClipImages(model), CLIP_DIM, weights or CLIP_PRETRAINED, device=device, crop=crop,
                        mean=CLIP_MEAN, std=CLIP_STD, interpolation="bicubic", resize=crop)


class _ClipImages(nn.Module):
    """A CLIP model's image tower: images -> image embeddings."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.clip = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(images)
