// The baseline of bench/model_step.c: the same TorchScript model (saved by model_step) trained
// the way a plain libtorch program would: torch::jit::load, Adam over module.parameters(),
// zero_grad, forward, sum of the LossModules' recorded losses, backward, step.
// Usage: model_step_plain model.pt mlp|pointcloud [steps=200] [warmup=20]
#include <torch/script.h>
#include <torch/optim/adam.h>
#include <ATen/Parallel.h>

#include <malloc.h>
#include <climits>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

extern "C" {
#include "model_step_data.h"
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: model_step_plain model.pt mlp|pointcloud [steps] [warmup]\n");
        return 2;
    }
    bool pc = !strcmp(argv[2], "pointcloud");
    int steps = argc > 3 ? atoi(argv[3]) : 200, warm = argc > 4 ? atoi(argv[4]) : 20;
    mallopt(M_MMAP_MAX, 0); /* what djct_tune_malloc() does for model_step */
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
    at::set_num_threads(1);
    torch::manual_seed(0);
    torch::jit::Module mod = torch::jit::load(argv[1]);
    mod.train();
    std::vector<torch::Tensor> params;
    for (const auto &p : mod.parameters())
        params.push_back(p);
    torch::optim::Adam opt(params, torch::optim::AdamOptions(1e-3));
    std::vector<torch::jit::Module> losses;
    for (const auto &m : mod.modules())
        if (m.hasattr("_djct_losses"))
            losses.push_back(m);
    bench_data d;
    bench_data_make(&d, pc);
    c10::List<at::Tensor> feats, tgts;
    if (pc) {
        feats.push_back(torch::from_blob(d.x, {d.n_points, PC_F}));
        feats.push_back(torch::from_blob(d.rs, {PC_E + 1}, torch::kLong));
        tgts.push_back(torch::from_blob(d.label, {PC_E}, torch::kInt));
        tgts.push_back(torch::from_blob(d.target, {PC_E}));
    } else {
        feats.push_back(torch::from_blob(d.x, {MLP_B, MLP_IN}));
        tgts.push_back(torch::from_blob(d.label, {MLP_B}, torch::kInt));
    }
    std::vector<double> t;
    double last = 0;
    for (int s = -warm; s < steps; s++) {
        auto t0 = std::chrono::steady_clock::now();
        opt.zero_grad();
        mod.forward({feats, tgts});
        torch::Tensor loss;
        for (auto &m : losses) {
            auto l = m.attr("_djct_losses").toList();
            for (size_t i = 0; i < l.size(); i++)
                loss = loss.defined() ? loss + l.get(i).toTensor() : l.get(i).toTensor();
            l.clear();
        }
        loss.backward();
        opt.step();
        last = loss.item<double>();
        if (s >= 0)
            t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    printf("plain %s median_ms %.4f last_loss %.4f\n", argv[2], t[t.size() / 2], last);
    bench_data_free(&d);
    return 0;
}
