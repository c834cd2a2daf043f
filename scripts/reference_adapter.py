"""The VLSM-Adapter reference code's adapter block (Dhakal et al., MICCAI 2024), shared by the
fixture script and the PyTorch benchmark."""
import torch


class Adapter(torch.nn.Module):
    """The reference code's block: x + relu(fc2(relu(fc1(x))))."""

    def __init__(self, d, r):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(d, r), torch.nn.Linear(r, d)

    def forward(self, x):
        return x + torch.relu(self.fc2(torch.relu(self.fc1(x))))
