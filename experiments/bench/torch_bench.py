#!/usr/bin/env python3
"""PyTorch side of `npm run bench -- --torch` (experiments/bench.ts). Never run by tests.

Reads one JSON job from stdin, {"section": ..., "threads": N, "budget": seconds, ...}, runs the
same work as the TypeScript side (shapes come from bench.ts, so both sides measure identical
problems) and prints one JSON object on stdout. Only torch and torchvision are needed; weights are
random (timing does not depend on them).

Sections:
  conv     forward / forward+backward of single conv layers (NCHW, PyTorch's native layout)
  wrn50    torchvision wide_resnet50_2 stem..layer3, eval, no_grad
  draem    one DRAEM training step (VitjanZ/DRAEM model_unet.py networks, L2 + SSIM + focal, Adam)
  cutpaste one CutPaste training step (torchvision-layout ResNet-18 + projection head, mean CE over
           all views, SGD momentum 0.9 / wd 3e-5); ResNet-18 re-typed here so torchvision is not needed
  coreset  PatchCore's official ApproximateGreedyCoresetSampler (torch ops, as in sampler.py)
  patchsvdd one Patch SVDD training step (official networks.py EncoderHier + PositionClassifier,
           main_train.py loss over the four streams, Adam)
  glass    one GLASS training step at the cpu profile (Tiny Darknet re-typed below, official
           glass.py GAS loop / hypersphere LAS push / OHEM + focal, Adam + AdamW); no torchvision
"""
import json
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def timed(fn, budget, max_reps=50, min_reps=1):
    """(seconds per call, reps, cores used): one warm-up call, then repeat until `budget` seconds.
    cores = process CPU seconds (all threads) per wall second while timing."""
    fn()
    reps = 0
    c0 = time.process_time()
    t0 = time.perf_counter()
    while True:
        fn()
        reps += 1
        el = time.perf_counter() - t0
        if reps >= max_reps or (el >= budget and reps >= min_reps):
            break
    wall = time.perf_counter() - t0
    return wall / reps, reps, (time.process_time() - c0) / wall


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------- conv

def bench_conv(job):
    out = []
    for cs in job["cases"]:
        n, h, c, o, k, s = cs["n"], cs["h"], cs["c"], cs["o"], cs["k"], cs["s"]
        groups = c if cs.get("depthwise") else 1
        p = k // 2
        x = torch.randn(n, c, h, h)
        w = torch.randn(o, c // groups, k, k)
        with torch.no_grad():
            t_fwd, _, c_fwd = timed(lambda: F.conv2d(x, w, None, s, p, 1, groups), job["budget"])
        xg = x.clone().requires_grad_(True)
        wg = w.clone().requires_grad_(True)
        y = F.conv2d(xg, wg, None, s, p, 1, groups)
        dy = torch.randn_like(y)

        def fwd_bwd():
            xg.grad = None
            wg.grad = None
            F.conv2d(xg, wg, None, s, p, 1, groups).backward(dy)

        t_fb, _, c_fb = timed(fwd_bwd, job["budget"])
        out.append({"name": cs["name"], "fwd_s": t_fwd, "fwd_bwd_s": t_fb, "fwd_cores": c_fwd, "fwd_bwd_cores": c_fb})
    return {"cases": out}


# ---------------------------------------------------------------- wrn50

def bench_wrn50(job):
    import torchvision
    m = torchvision.models.wide_resnet50_2(weights=None).eval()

    def extract(x):
        h = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        h = m.layer1(h)
        l2 = m.layer2(h)
        l3 = m.layer3(l2)
        return l2, l3

    out = []
    size = job["size"]
    for b in job["batches"]:
        x = torch.rand(b, 3, size, size)
        with torch.inference_mode():
            t, reps, cores = timed(lambda: extract(x), job["budget"], max_reps=job.get("max_reps", 20))
        out.append({"batch": b, "s_per_call": t, "s_per_image": t / b, "reps": reps, "cores": cores})
    return {"runs": out}


# ---------------------------------------------------------------- draem (model_unet.py)

def cbr2(cin, cout, mid=None):
    mid = mid or cout
    return nn.Sequential(
        nn.Conv2d(cin, mid, 3, padding=1), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
        nn.Conv2d(mid, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def up(cin, cout):
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Reconstructive(nn.Module):
    def __init__(self, w=128, cin=3, cout=3):
        super().__init__()
        self.enc = nn.ModuleList([cbr2(cin, w), cbr2(w, 2 * w), cbr2(2 * w, 4 * w), cbr2(4 * w, 8 * w), cbr2(8 * w, 8 * w)])
        self.ups = nn.ModuleList([up(8 * w, 8 * w), up(4 * w, 4 * w), up(2 * w, 2 * w), up(w, w)])
        self.dbs = nn.ModuleList([cbr2(8 * w, 4 * w, 8 * w), cbr2(4 * w, 2 * w, 4 * w), cbr2(2 * w, w, 2 * w), cbr2(w, w, w)])
        self.fin = nn.Conv2d(w, cout, 3, padding=1)

    def forward(self, x):
        for i, b in enumerate(self.enc):
            x = b(F.max_pool2d(x, 2) if i > 0 else x)
        for u, d in zip(self.ups, self.dbs):
            x = d(u(x))
        return self.fin(x)


class Discriminative(nn.Module):
    def __init__(self, w=64, cin=6, cout=2):
        super().__init__()
        ch = [w, 2 * w, 4 * w, 8 * w, 8 * w, 8 * w]
        self.enc = nn.ModuleList([cbr2(cin, w)] + [cbr2(ch[i - 1], ch[i]) for i in range(1, 6)])
        self.up_b = up(8 * w, 8 * w)
        self.db_b = cbr2(16 * w, 8 * w, 8 * w)
        self.ups = nn.ModuleList([up(8 * w, 4 * w), up(4 * w, 2 * w), up(2 * w, w), up(w, w)])
        self.dbs = nn.ModuleList([cbr2(4 * w + 8 * w, 4 * w, 4 * w), cbr2(2 * w + 4 * w, 2 * w, 2 * w), cbr2(w + 2 * w, w, w), cbr2(2 * w, w, w)])
        self.fin = nn.Conv2d(w, cout, 3, padding=1)

    def forward(self, x):
        feats = []
        for i, b in enumerate(self.enc):
            x = b(F.max_pool2d(x, 2) if i > 0 else x)
            feats.append(x)
        x = self.db_b(torch.cat((self.up_b(feats[5]), feats[4]), 1))
        for u, d, skip in zip(self.ups, self.dbs, [feats[3], feats[2], feats[1], feats[0]]):
            x = d(torch.cat((u(x), skip), 1))
        return self.fin(x)


def gaussian_window(size, sigma, channels):
    g = torch.tensor([math.exp(-((x - size // 2) ** 2) / (2 * sigma ** 2)) for x in range(size)])
    g = (g / g.sum()).unsqueeze(1)
    w2 = g.mm(g.t()).float().unsqueeze(0).unsqueeze(0)
    return w2.expand(channels, 1, size, size).contiguous()


def ssim_loss(img1, img2, window):
    """DRAEM loss.py ssim (val_range from img1, zero padding 5), returns 1 - mean SSIM."""
    max_val = 255 if torch.max(img1) > 128 else 1
    min_val = -1 if torch.min(img1) < -0.5 else 0
    l = max_val - min_val
    ch = img1.shape[1]
    mu1 = F.conv2d(img1, window, padding=5, groups=ch)
    mu2 = F.conv2d(img2, window, padding=5, groups=ch)
    mu1_sq, mu2_sq, mu1_mu2 = mu1.pow(2), mu2.pow(2), mu1 * mu2
    s1 = F.conv2d(img1 * img1, window, padding=5, groups=ch) - mu1_sq
    s2 = F.conv2d(img2 * img2, window, padding=5, groups=ch) - mu2_sq
    s12 = F.conv2d(img1 * img2, window, padding=5, groups=ch) - mu1_mu2
    c1, c2 = (0.01 * l) ** 2, (0.03 * l) ** 2
    v1 = 2.0 * s12 + c2
    v2 = s1 + s2 + c2
    ssim_map = ((2 * mu1_mu2 + c1) * v1) / ((mu1_sq + mu2_sq + c1) * v2)
    return 1.0 - ssim_map.mean()


def focal_loss(probs, target, gamma=2.0, smooth=1e-5):
    """DRAEM loss.py FocalLoss(apply_nonlin=None, alpha=None) on softmax probabilities."""
    nc = probs.shape[1]
    logit = probs.permute(0, 2, 3, 1).reshape(-1, nc)
    t = target.reshape(-1).long()
    oh = torch.zeros(t.shape[0], nc).scatter_(1, t.unsqueeze(1), 1)
    oh = torch.clamp(oh, smooth / (nc - 1), 1.0 - smooth)
    pt = (oh * logit).sum(1) + smooth
    return (-1 * torch.pow(1 - pt, gamma) * pt.log()).mean()


def bench_draem(job):
    torch.manual_seed(0)
    rec = Reconstructive(job["recWidth"]).train()
    disc = Discriminative(job["discWidth"]).train()
    opt = torch.optim.Adam(list(rec.parameters()) + list(disc.parameters()), lr=1e-4)
    n, s = job["batch"], job["size"]
    aug = torch.rand(n, 3, s, s)
    clean = torch.rand(n, 3, s, s)
    mask = (torch.rand(n, 1, s, s) > 0.9).float()
    window = gaussian_window(11, 1.5, 3)

    def step():
        gray_rec = rec(aug)
        out_mask = disc(torch.cat((gray_rec, aug), 1))
        sm = torch.softmax(out_mask, 1)
        loss = F.mse_loss(gray_rec, clean) + ssim_loss(gray_rec, clean, window) + focal_loss(sm, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()

    t, reps, cores = timed(step, job["budget"], max_reps=job.get("max_reps", 10))
    nparams = sum(p.numel() for p in rec.parameters()) + sum(p.numel() for p in disc.parameters())
    # Forward conv MACs (hooks), for rows whose tfjs side could not run; a step counts 3x.
    macs = [0]

    def hook(m, inp, out):
        macs[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    hs = [m.register_forward_hook(hook) for net in (rec, disc) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        disc(torch.cat((rec(aug), aug), 1))
    for h in hs:
        h.remove()
    return {"s_per_step": t, "reps": reps, "params": nparams, "cores": cores, "step_macs": 3 * macs[0]}


# ---------------------------------------------------------------- cutpaste (ResNet-18 + head, cutpaste.md §2)

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """torchvision resnet18 layout without fc (forward = pooled 512-d feature)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers, cin = [], 64
        for i, c in enumerate([64, 128, 256, 512]):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(cin, c, stride), BasicBlock(c, c, 1)))
            cin = c
        self.layer1, self.layer2, self.layer3, self.layer4 = layers

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


class ProjectionNet(nn.Module):
    def __init__(self, head_layers=2, classes=3):
        super().__init__()
        self.resnet18 = ResNet18()
        seq, last = [], 512
        for n in [512] * head_layers + [128]:
            seq += [nn.Linear(last, n), nn.BatchNorm1d(n), nn.ReLU(inplace=True)]
            last = n
        self.head = nn.Sequential(*seq)
        self.out = nn.Linear(last, classes)

    def forward(self, x):
        embeds = self.resnet18(x)
        return embeds, self.out(self.head(embeds))


def bench_cutpaste(job):
    torch.manual_seed(0)
    net = ProjectionNet(job["head_layers"], job["classes"]).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.03, momentum=0.9, weight_decay=3e-5)
    k, s = job["sources"], job["size"]
    views = job["classes"] * k
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = torch.rand(views, 3, s, s)
    y = torch.arange(job["classes"]).repeat_interleave(k)

    def step():
        _, logits = net((x - mean) / std)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    t, reps, cores = timed(step, job["budget"], max_reps=job.get("max_reps", 10))
    macs = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            macs[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else:
            macs[0] += m.in_features * m.out_features * out.shape[0]

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        net.eval()(x)
    for h in hs:
        h.remove()
    return {"s_per_step": t, "reps": reps, "params": sum(p.numel() for p in net.parameters()), "cores": cores, "step_macs": 3 * macs[0]}


# ---------------------------------------------------------------- Patch SVDD (networks.py, main_train.py)

class EncoderDeep(nn.Module):
    def __init__(self, D=64):
        super().__init__()
        chans = [(3, 32, 2), (32, 64, 1), (64, 128, 1), (128, 128, 1), (128, 64, 1), (64, 32, 1), (32, 32, 1), (32, D, 1)]
        self.convs = nn.ModuleList([nn.Conv2d(i, o, 3, s, 0) for i, o, s in chans])

    def forward(self, x):
        for i, c in enumerate(self.convs):
            x = c(x)
            x = F.leaky_relu(x, 0.1) if i < len(self.convs) - 1 else torch.tanh(x)
        return x


class EncoderHier(nn.Module):
    def __init__(self, D=64):
        super().__init__()
        self.enc = EncoderDeep(D)
        self.conv1 = nn.Conv2d(D, 128, 2, 1, 0)
        self.conv2 = nn.Conv2d(128, D, 1, 1, 0)

    def forward(self, x):
        n = x.size(0)
        x1, x2, x3, x4 = x[..., :32, :32], x[..., :32, 32:], x[..., 32:, :32], x[..., 32:, 32:]
        hh = self.enc(torch.cat([x1, x2, x3, x4], dim=0))
        h = torch.cat([torch.cat([hh[:n], hh[n:2 * n]], dim=3), torch.cat([hh[2 * n:3 * n], hh[3 * n:]], dim=3)], dim=2)
        return torch.tanh(self.conv2(F.leaky_relu(self.conv1(h), 0.1)))


class NormalizedLinear(nn.Module):
    def __init__(self, fin, fout):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(fout, fin))
        self.bias = nn.Parameter(torch.empty(fout))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.uniform_(self.bias, -1 / math.sqrt(fin), 1 / math.sqrt(fin))

    def forward(self, x):
        with torch.no_grad():
            w = self.weight / self.weight.data.norm(keepdim=True, dim=0)
        return F.linear(x, w, self.bias)


class PositionClassifier(nn.Module):
    def __init__(self, D=64):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(D, 128), nn.Linear(128, 128), NormalizedLinear(128, 8)

    def forward(self, h1, h2):
        h = (h1 - h2).view(h1.size(0), -1)
        return self.fc3(F.leaky_relu(self.fc2(F.leaky_relu(self.fc1(h), 0.1)), 0.1))


def bench_patchsvdd(job):
    torch.manual_seed(0)
    enc, c64, c32 = EncoderHier().train(), PositionClassifier().train(), PositionClassifier().train()
    opt = torch.optim.Adam(list(enc.parameters()) + list(c64.parameters()) + list(c32.parameters()), lr=1e-4)
    n = job["batch"]
    p64 = [torch.randn(n, 3, 64, 64) * 0.2 for _ in range(4)]
    p32 = [torch.randn(n, 3, 32, 32) * 0.2 for _ in range(4)]
    y64, y32 = torch.randint(0, 8, (n,)), torch.randint(0, 8, (n,))

    def step():
        opt.zero_grad()
        loss_pos_64 = F.cross_entropy(c64(enc(p64[2]), enc(p64[3])), y64)
        loss_pos_32 = F.cross_entropy(c32(enc.enc(p32[2]), enc.enc(p32[3])), y32)
        loss_svdd_64 = (enc(p64[0]) - enc(p64[1])).norm(dim=1).mean()
        loss_svdd_32 = (enc.enc(p32[0]) - enc.enc(p32[1])).norm(dim=1).mean()
        loss = loss_pos_64 + loss_pos_32 + 1e-3 * (loss_svdd_64 + loss_svdd_32)
        loss.backward()
        opt.step()

    t, reps, cores = timed(step, job["budget"], max_reps=job.get("max_reps", 10))
    nparams = sum(p.numel() for m in (enc, c64, c32) for p in m.parameters())
    return {"s_per_step": t, "reps": reps, "params": nparams, "cores": cores}


# ---------------------------------------------------------------- coreset (PatchCore sampler.py)

def batchwise_differences(a, b):
    a_times_a = a.unsqueeze(1).bmm(a.unsqueeze(2)).reshape(-1, 1)
    b_times_b = b.unsqueeze(1).bmm(b.unsqueeze(2)).reshape(1, -1)
    a_times_b = a.mm(b.T)
    return (-2 * a_times_b + a_times_a + b_times_b).clamp(0, None).sqrt()


def greedy_coreset(features, count, starts):
    dist = torch.mean(batchwise_differences(features, features[starts]), axis=-1).reshape(-1, 1)
    idx = []
    with torch.no_grad():
        for _ in range(count):
            sel = torch.argmax(dist).item()
            idx.append(sel)
            d = batchwise_differences(features, features[sel:sel + 1])
            dist = torch.cat([dist, d], dim=-1)
            dist = torch.min(dist, dim=1).values.reshape(-1, 1)
    return idx


def bench_coreset(job):
    g = torch.Generator().manual_seed(0)
    rows, dim, pdim, count = job["rows"], job["dim"], job["projDim"], job["count"]
    feats = torch.randn(rows, dim, generator=g)
    c0, t0 = time.process_time(), time.perf_counter()
    with torch.no_grad():
        mapper = torch.nn.Linear(dim, pdim, bias=False)
        projected = mapper(feats)
    t_proj = time.perf_counter() - t0
    c_proj = (time.process_time() - c0) / t_proj
    starts = torch.randperm(rows, generator=g)[:10].tolist()
    c0, t0 = time.process_time(), time.perf_counter()
    greedy_coreset(projected, count, starts)
    t_sel = time.perf_counter() - t0
    c_sel = (time.process_time() - c0) / t_sel
    return {"projection_s": t_proj, "selection_s": t_sel, "s_per_iteration": t_sel / count,
            "projection_cores": c_proj, "selection_cores": c_sel}


# ---------------------------------------------------------------- glass (cqylunlun/GLASS glass.py)

# (filters, kernel, maxpool after): src/models/backbones/darknet.ts DARKNET_CONVS, first 14 units.
DARKNET = [(16, 3, True), (32, 3, True), (16, 1, False), (128, 3, False), (16, 1, False), (128, 3, True),
           (32, 1, False), (256, 3, False), (32, 1, False), (256, 3, True), (64, 1, False), (512, 3, False),
           (64, 1, False), (512, 3, False)]


class TinyDarknet(nn.Module):
    """conv (no bias) + BN + LeakyReLU(0.1) units; taps after units 10 (stride 8) and 14 (stride 16)."""

    def __init__(self):
        super().__init__()
        layers, cin = [], 3
        for f, k, _ in DARKNET:
            layers.append(nn.Sequential(nn.Conv2d(cin, f, k, padding=k // 2, bias=False), nn.BatchNorm2d(f), nn.LeakyReLU(0.1)))
            cin = f
        self.units = nn.ModuleList(layers)

    def forward(self, x):
        taps = []
        for i, (u, (_, _, pool)) in enumerate(zip(self.units, DARKNET)):
            x = u(x)
            if i in (9, 13):
                taps.append(x)
            if pool:
                x = F.max_pool2d(x, 2, 2)
        return taps


def patch_embed(taps, dim):
    """GLASS/PatchCore aggregation: 3x3 unfold, deeper tap resized to the first grid, adaptive pools."""
    b, _, h0, w0 = taps[0].shape
    per = []
    for t in taps:
        c, h, w = t.shape[1], t.shape[2], t.shape[3]
        u = F.unfold(t, 3, padding=1).reshape(b, c * 9, h, w)
        if (h, w) != (h0, w0):
            u = F.interpolate(u, size=(h0, w0), mode="bilinear", align_corners=False)
        u = u.permute(0, 2, 3, 1).reshape(b * h0 * w0, 1, c * 9)
        per.append(F.adaptive_avg_pool1d(u, dim).squeeze(1))
    x = torch.stack(per, 1).reshape(b * h0 * w0, 1, -1)
    return F.adaptive_avg_pool1d(x, dim).squeeze(1)


def glass_focal(s, target, keep, gamma=2.0, smooth=1e-5):
    prob = torch.stack([1 - s, s], 1)
    onehot = torch.stack([1 - target, target], 1).clamp(smooth, 1 - smooth)
    pt = (onehot * prob).sum(1) + smooth
    loss = -((1 - pt) ** gamma) * pt.log()
    return (loss * keep).sum() / keep.sum().clamp(min=1)


def bench_glass(job):
    torch.manual_seed(0)
    n, size, dim, hidden, steps = job["batch"], job["size"], job["dim"], job["hidden"], job["gasSteps"]
    backbone = TinyDarknet().eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    adaptor = nn.Linear(dim, dim)
    disc = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1, bias=False), nn.Sigmoid()).train()
    opt_a = torch.optim.Adam(adaptor.parameters(), lr=1e-4, weight_decay=1e-5)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=2e-4)
    clean = torch.rand(n, 3, size, size)
    las = torch.rand(n, 3, size, size)
    with torch.no_grad():
        grid = backbone(clean[:1])[0].shape[2] * backbone(clean[:1])[0].shape[3]
    mask = (torch.arange(n * grid) % 7 == 0).float()
    center = torch.randn(grid, dim) * 0.1

    def step():
        with torch.no_grad():
            et, ef = patch_embed(backbone(clean), dim), patch_embed(backbone(las), dim)
        T, Fx = adaptor(et), adaptor(ef)
        c = center.repeat(n, 1)
        with torch.no_grad():
            r = torch.quantile(torch.cat([(Fx - c).norm(dim=1)[mask == 0], (T - c).norm(dim=1)]), 0.75)
        G = (T + 0.015 * torch.randn_like(T)).detach()
        for i in range(steps):
            G.requires_grad_(True)
            out = disc(torch.cat([T, G]))
            loss_g = F.binary_cross_entropy(out[T.shape[0]:], torch.ones_like(out[T.shape[0]:]))
            g = torch.autograd.grad(loss_g, [G])[0]
            with torch.no_grad():
                G = G + 0.001 * g / (g.norm(dim=1, keepdim=True) + 1e-10)
                if (i + 1) % 5 == 0:
                    h = G - c
                    hn = h.norm(dim=1, keepdim=True)
                    G = c + h * hn.clamp(r, 2 * r) / hn
            G = G.detach()
        Gt = T + (G - T).detach()
        out = disc(torch.cat([T, Gt]))
        loss_bce = F.binary_cross_entropy(out[:T.shape[0]], torch.zeros_like(out[:T.shape[0]])) + \
            F.binary_cross_entropy(out[T.shape[0]:], torch.ones_like(out[T.shape[0]:]))
        h = Fx - c
        hn = h.norm(dim=1, keepdim=True)
        pushed = c + h * hn.clamp(2 * r, 4 * r) / (hn + 1e-10)
        Fp = Fx + mask[:, None] * (pushed - Fx)
        s = disc(Fp).squeeze(1)
        with torch.no_grad():
            e = (s - mask) ** 2
            keep = (e >= torch.quantile(e, 0.5)).float()
        loss = loss_bce + glass_focal(s, mask, keep)
        opt_a.zero_grad()
        opt_d.zero_grad()
        loss.backward()
        opt_a.step()
        opt_d.step()

    t, reps, cores = timed(step, job["budget"], max_reps=job.get("max_reps", 5))
    nparams = sum(p.numel() for p in adaptor.parameters()) + sum(p.numel() for p in disc.parameters())
    return {"s_per_step": t, "reps": reps, "params": nparams, "cores": cores}


def main():
    job = json.loads(sys.stdin.read())
    torch.set_num_threads(int(job.get("threads", 2)))
    fn = {"conv": bench_conv, "wrn50": bench_wrn50, "draem": bench_draem, "cutpaste": bench_cutpaste, "coreset": bench_coreset, "glass": bench_glass, "patchsvdd": bench_patchsvdd}[job["section"]]
    t0 = time.perf_counter()
    res = fn(job)
    res.update({
        "section": job["section"],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "peak_rss_mb": peak_rss_mb(),
        "wall_s": time.perf_counter() - t0,
    })
    print(json.dumps(res))


if __name__ == "__main__":
    main()
