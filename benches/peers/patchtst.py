#!/usr/bin/env python3
"""PyTorch peer for `retrain nn`: the same PatchTST and N-HiTS architectures on the
same ETT windows (12/4/4-month protocol, per-channel z-score from the training months,
lookback 336, horizon 96, stride 1), trained with the same optimiser settings, timed per
epoch with torch.set_num_threads(THREADS). Prints one JSON line per model.

usage: benches/peers/patchtst.py ETTh1.csv [--models patchtst,nhits] [--size small|large]
           [--batches N] [--threads 2] [--epochs 1]
needs: python3 with torch, pandas, numpy
"""
import argparse, json, math, time, resource

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

TRAIN, EVAL = 12 * 30 * 24, 4 * 30 * 24


def windows(path, L, H):
    df = pd.read_csv(path)
    x = df.drop(columns=[c for c in df.columns if c.lower() == "date"]).to_numpy(np.float64)
    mean, std = x[:TRAIN].mean(0), x[:TRAIN].std(0)
    x = ((x - mean) / std).astype(np.float32)
    def cut(a, b):
        s = x[a:b]
        n = len(s) - L - H + 1
        idx = np.arange(n)[:, None]
        return torch.from_numpy(s[idx + np.arange(L)]), torch.from_numpy(s[idx + L + np.arange(H)])
    return cut(0, TRAIN), cut(TRAIN - L, TRAIN + EVAL), cut(TRAIN + EVAL - L, TRAIN + 2 * EVAL)


class RevIN(nn.Module):
    def __init__(self, eps=1e-5):
        super().__init__(); self.eps = eps
    def norm(self, x):  # [b, L, c]
        self.mean = x.mean(1, keepdim=True).detach()
        self.std = torch.sqrt(x.var(1, keepdim=True, unbiased=False) + self.eps).detach()
        return (x - self.mean) / self.std
    def denorm(self, y):
        return y * self.std + self.mean


class Attn(nn.Module):
    def __init__(self, d, h, p):
        super().__init__()
        self.h, self.scale = h, (d // h) ** -0.5
        self.W_Q, self.W_K, self.W_V, self.to_out = (nn.Linear(d, d) for _ in range(4))
        self.drop = nn.Dropout(p)
    def forward(self, x, prev):
        n, P, d = x.shape
        q = self.W_Q(x).view(n, P, self.h, -1).transpose(1, 2)
        k = self.W_K(x).view(n, P, self.h, -1).permute(0, 2, 3, 1)
        v = self.W_V(x).view(n, P, self.h, -1).transpose(1, 2)
        s = torch.matmul(q, k) * self.scale
        if prev is not None:
            s = s + prev
        o = torch.matmul(F.softmax(s, dim=-1), v).transpose(1, 2).reshape(n, P, d)
        return self.drop(self.to_out(o)), s


class BN(nn.Module):
    def __init__(self, d):
        super().__init__(); self.bn = nn.BatchNorm1d(d)
    def forward(self, x):
        return self.bn(x.transpose(1, 2)).transpose(1, 2)


class Layer(nn.Module):
    def __init__(self, d, h, dff, p):
        super().__init__()
        self.attn, self.n1, self.n2 = Attn(d, h, p), BN(d), BN(d)
        self.ff = nn.Sequential(nn.Linear(d, dff), nn.GELU(), nn.Dropout(p), nn.Linear(dff, d))
        self.d1, self.d2 = nn.Dropout(p), nn.Dropout(p)
    def forward(self, x, prev):
        a, s = self.attn(x, prev)
        x = self.n1(x + self.d1(a))
        x = self.n2(x + self.d2(self.ff(x)))
        return x, s


class PatchTST(nn.Module):
    def __init__(self, L, H, d, h, dff, p, layers=3, pl=16, stride=8):
        super().__init__()
        self.pl, self.stride, self.P = pl, stride, (L - pl) // stride + 2
        self.revin, self.W_P = RevIN(), nn.Linear(pl, d)
        self.W_pos = nn.Parameter(torch.empty(self.P, d).uniform_(-0.02, 0.02))
        self.drop = nn.Dropout(p)
        self.layers = nn.ModuleList(Layer(d, h, dff, p) for _ in range(layers))
        self.head = nn.Linear(d * self.P, H)
    def forward(self, x):  # [b, L, c]
        b, L, c = x.shape
        x = self.revin.norm(x).permute(0, 2, 1)
        x = F.pad(x, (0, self.stride), mode="replicate")
        x = x.unfold(-1, self.pl, self.stride).reshape(b * c, self.P, self.pl)
        z = self.drop(self.W_P(x) + self.W_pos)
        prev = None
        for layer in self.layers:
            z, prev = layer(z, prev)
        z = z.reshape(b, c, self.P, -1).transpose(2, 3).reshape(b, c, -1)
        return self.revin.denorm(self.head(z).permute(0, 2, 1))


class NHITS(nn.Module):
    def __init__(self, L, H, hidden=512, kernels=(2, 2, 1), down=(4, 2, 1), mlp=3):
        super().__init__()
        self.L, self.H, self.blocks = L, H, nn.ModuleList()
        for k, f in zip(kernels, down):
            knots = max(H // f, 1)
            layers = [nn.Linear(math.ceil(L / k), hidden)]
            for _ in range(mlp):
                layers += [nn.Linear(hidden, hidden), nn.ReLU()]
            blk = nn.Module()
            blk.pool = nn.MaxPool1d(k, k, ceil_mode=True)
            blk.mlp, blk.out, blk.knots = nn.Sequential(*layers), nn.Linear(hidden, L + knots), knots
            self.blocks.append(blk)
    def forward(self, x):  # [b, L, c]
        b, L, c = x.shape
        y = x.permute(0, 2, 1).reshape(b * c, L)
        res = y.flip(-1)
        fc = y[:, -1:].expand(-1, self.H)
        for blk in self.blocks:
            theta = blk.out(blk.mlp(blk.pool(res.unsqueeze(1)).squeeze(1)))
            back, knots = theta[:, :L], theta[:, L:]
            fc = fc + F.interpolate(knots.unsqueeze(1), size=self.H, mode="linear").squeeze(1)
            res = res - back
        return fc.reshape(b, c, self.H).permute(0, 2, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ett")
    ap.add_argument("--models", default="patchtst,nhits")
    ap.add_argument("--size", default="small")
    ap.add_argument("--batches", type=int, default=0, help="batches per epoch (0 = all)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lookback", type=int, default=336)
    ap.add_argument("--horizon", type=int, default=96)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(2021)
    (xt, yt), (xv, yv), (xs, ys) = windows(a.ett, a.lookback, a.horizon)
    for name in a.models.split(","):
        if name == "patchtst":
            d, h, dff, p = (16, 4, 128, 0.3) if a.size == "small" else (128, 16, 256, 0.2)
            net, lr, bs = PatchTST(a.lookback, a.horizon, d, h, dff, p), 1e-4, 128
        else:
            net, lr, bs = NHITS(a.lookback, a.horizon), 1e-3, 256
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        g = torch.Generator().manual_seed(0)
        epoch_s, steps = [], 0
        for _ in range(a.epochs):
            net.train()
            order = torch.randperm(len(xt), generator=g)
            nb = math.ceil(len(xt) / bs) if a.batches == 0 else min(a.batches, math.ceil(len(xt) / bs))
            t = time.perf_counter()
            for i in range(nb):
                idx = order[i * bs:(i + 1) * bs]
                loss = F.mse_loss(net(xt[idx]), yt[idx])
                opt.zero_grad(); loss.backward(); opt.step(); steps += 1
            epoch_s.append(time.perf_counter() - t)
        net.eval()
        with torch.no_grad():
            pred = torch.cat([net(xs[i:i + 256]) for i in range(0, len(xs), 256)])
        print(json.dumps({
            "lib": "pytorch " + torch.__version__, "model": name, "size": a.size if name == "patchtst" else None,
            "threads": a.threads, "batches_per_epoch": nb, "batch_size": bs,
            "epoch_seconds": epoch_s, "step_seconds": sum(epoch_s) / steps,
            "test_mse": float(F.mse_loss(pred, ys)), "test_mae": float((pred - ys).abs().mean()),
            "parameters": sum(p.numel() for p in net.parameters()),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }), flush=True)


if __name__ == "__main__":
    main()
