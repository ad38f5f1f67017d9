"""A tiny training job for tests/test_train_ddp.py, run with one process or under torchrun.

    python tests/ddp_job.py OUT                                   # one process
    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_job.py OUT

Rank 0 writes OUT/log.jsonl, OUT/checkpoint/ and OUT/state.pt (cmmixer.train.fit); every rank writes
OUT/rank<r>.json with its world size, backend and the dataset indices it trained on at each step.
The step draws masking noise per sample (generator.rand_per_sample) and the model adds an InfoNCE-style term over the
GLOBAL batch (all_gather_cat), so both the randomness and a batch-coupled loss are compared across world sizes.
"""
import json, os, sys
from pathlib import Path
import torch
from torch import nn
import torch.nn.functional as F
from cmmixer.train import TrainConfig, fit
from cmmixer.distributed import all_gather_cat

class JobModel(nn.Module):
    "Per-token regression with per-sample masking, plus a contrastive term over the global batch."
    def __init__(self, tokens=4, dim=8, mask_ratio=0.25):
        super().__init__()
        self.mask_ratio = mask_ratio
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, dim) * .02)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.norm, self.body, self.head = nn.LayerNorm(dim), nn.Linear(dim, 32), nn.Linear(32, dim)
        self.skip = nn.Linear(dim, dim, bias=False)
    def forward(self, x, target, noise):
        h = x + self.pos_embed
        h = torch.where((noise >= self.mask_ratio)[..., None], h, self.mask_token.expand_as(h))
        y = self.skip(h) + self.head(F.gelu(self.body(self.norm(h))))
        mse = ((y - target) ** 2).mean()                           # per-sample mean: DDP averages it
        za, zb = all_gather_cat(F.normalize(y.mean(1), dim=-1)), all_gather_cat(F.normalize(target.mean(1), dim=-1))
        logits = za @ zb.T / 0.3
        nce = F.cross_entropy(logits, torch.arange(len(logits)))  # the same global value on every rank
        return dict(loss=mse + 0.1 * nce, mse=mse, nce=nce)

class Pairs(torch.utils.data.Dataset):
    def __init__(self, n=48, tokens=4, dim=8, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, tokens, dim, generator=g)
        self.y = self.x @ (torch.randn(dim, dim, generator=g) / dim ** .5)
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return dict(x=self.x[i], target=self.y[i], index=torch.tensor(i))

def main(out):
    out = Path(out)
    torch.manual_seed(0)                      # the same initial weights in every process
    model, seen = JobModel(), []
    def step(model, batch, generator):
        seen.append(batch['index'].tolist())
        noise = generator.rand_per_sample(batch['x'].shape[1])   # per-sample: independent of the world size
        return model(batch['x'], batch['target'], noise)
    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-2, min_lr=1e-4, warmup_epochs=0.5, seed=3, out_dir=str(out),
                      progress=False, ckpt_every_epochs=1)
    fit(model, Pairs(), cfg, step_fn=step)
    info = dict(rank=int(os.environ.get('RANK', 0)), world_size=int(os.environ.get('WORLD_SIZE', 1)), seen=seen)
    (out / f"rank{info['rank']}.json").write_text(json.dumps(info))

if __name__ == '__main__':
    main(sys.argv[1])
