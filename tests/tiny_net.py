"""A small SampleNet for the analysis tests (07, 07a): stubs, ReLU modules, fusable groups; cheap enough for many cases."""
import torch
import torch.nn as nn
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules, fuse_modules_qat


class Tiny(nn.Module):
    "A small SampleNet: stubs, ReLU modules, fusable groups; cheap enough for many cases."
    fuse_groups = [['conv1', 'relu1'], ['conv2', 'relu2'], ['fc1', 'relu3']]
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = QuantStub(), DeQuantStub()
        self.conv1, self.relu1 = nn.Conv2d(1, 8, 3), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(8, 8, 3, stride=2), nn.ReLU()
        self.flatten, self.fc1, self.relu3, self.fc2 = nn.Flatten(), nn.Linear(8 * 12 * 12, 32), nn.ReLU(), nn.Linear(32, 10)
    def forward(self, x):
        x = self.relu2(self.conv2(self.relu1(self.conv1(self.quant(x)))))
        return self.dequant(self.fc2(self.relu3(self.fc1(self.flatten(x)))))
    def fuse_model(self, qat=False):
        (fuse_modules_qat if qat else fuse_modules)(self, self.fuse_groups, inplace=True); return self


def tiny_setup():
    "Tiny with seeded weights, and three batches labelled with its own answers (float accuracy 1.0)."
    torch.manual_seed(0)
    model = Tiny().eval()
    xs = [torch.randn(32, 1, 28, 28) for _ in range(3)]
    with torch.no_grad(): data = [(x, model(x).argmax(1)) for x in xs]  # labels: the float model's answers (float accuracy 1.0)
    return model, data


class FourClasses(nn.Module):
    "Two Linear layers, 8 inputs, 4 classes: for labels and inputs a 10-class net cannot take."
    def __init__(self):
        super().__init__()
        self.fc1, self.relu, self.fc2 = nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))
