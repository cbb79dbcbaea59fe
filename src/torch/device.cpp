/* The libtorch bridge's device side, so that the host never dereferences device memory: where a
 * model lives, whether its gradients are finite (computed where the slab lives, one flag copied
 * back), a slab copy across devices, libtorch's current CUDA stream handed to comm as void *, and
 * batches staged ahead of their forward: copied into one of two pinned host slots, then to the
 * device by non-blocking copies on the model's own copy stream, ordered by events:
 *   - the copy stream waits for an event recorded on libtorch's current stream at staging time
 *     (the batch's device tensors come from libtorch's caching allocator, whose blocks may still
 *     be read by queued kernels of that stream);
 *   - the forward's stream waits for the event recorded after the batch's copies;
 *   - a pinned slot is written again only after the host saw that event of its last copy.
 * The CUDA runtime calls need DJCT_HAVE_CUDA (djct's CUDA build), libtorch's streams need
 * DJCT_TORCH_CUDA (configure: the libtorch has CUDA and its c10/cuda headers); a libtorch without
 * CUDA never has a CUDA model, so only the CPU paths run there. */
#include "model_int.hpp"

#include <cstddef>
#include <cstdlib>
#include <cstring>

extern "C" {
#include "djct_int.h"
}

#if defined(DJCT_HAVE_CUDA) && DJCT_HAVE_CUDA
#include <cuda_runtime_api.h>
#define DEV_CUDA 1
#else
#define DEV_CUDA 0
#endif
#if DEV_CUDA && defined(DJCT_TORCH_CUDA) && DJCT_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#define DEV_STREAMS 1
#else
#define DEV_STREAMS 0
#endif

/* ---- what this build and machine offer ---------------------------------------------------------- */

extern "C" int djct_torch_cuda_available(int *count, char *why, size_t why_cap) noexcept
{
    DJCT_CHECK_ARG(count);
    *count = 0;
    char none[1];
    if (!why || !why_cap) {
        why = none;
        why_cap = sizeof(none);
    }
    why[0] = '\0';
    return guard([&] {
#if !(defined(DJCT_TORCH_CUDA) && DJCT_TORCH_CUDA)
        snprintf(why, why_cap, "this libtorch has no CUDA, a CPU-only build");
        return 0;
#else
        int n = at::hasCUDA() ? (int)at::getNumGPUs() : 0;
        const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
        if (n == 0)
            snprintf(why, why_cap, "libtorch finds no usable GPU (no driver or no device%s%s)",
                     cvd ? ", CUDA_VISIBLE_DEVICES=" : "", cvd ? cvd : "");
        else if (!DEV_STREAMS)
            snprintf(why, why_cap, "djct was built without its CUDA code (configure found no nvcc, nccl.h "
                     "or libcudart under CUDA_HOME)");
        else
            *count = n;
        return 0;
#endif
    });
}

extern "C" int djct_model_device_index(const djct_model *m) noexcept
{
    return m && m->device.is_cuda() ? (int)m->device.index() : -1;
}

/* ---- device-aware helpers ------------------------------------------------------------------------- */

extern "C" int djct_model_grads_finite(djct_model *m, int *finite) noexcept
{
    DJCT_CHECK_ARG(m);
    DJCT_CHECK_ARG(finite);
    int rc = guard([&] {
        /* one reduction where the slab lives; .item() copies the flag back (on CUDA after the
         * work queued on the current stream, i.e. after the gradients' reduction) */
        *finite = m->flatgrad.numel() == 0 || torch::isfinite(m->flatgrad).all().item<bool>();
        return 0;
    });
    if (rc < 0)
        djct_error_prefix("model '%s': checking the gradients", m->label.c_str());
    return rc;
}

extern "C" int djct_model_copy_params(djct_model *dst, djct_model *src) noexcept
{
    DJCT_CHECK_ARG(dst);
    DJCT_CHECK_ARG(src);
    if (dst->flat.numel() != src->flat.numel())
        return djct_error_set(DJCT_EINVAL, "model '%s' has %lld parameters, '%s' has %lld; the two models must "
                              "have the same layout", dst->label.c_str(), (long long)dst->flat.numel(),
                              src->label.c_str(), (long long)src->flat.numel());
    int rc = guard([&] {
        torch::NoGradGuard ng;
        dst->flat.copy_(src->flat); /* across devices: libtorch orders it on dst's current stream */
        return 0;
    });
    if (rc < 0)
        djct_error_prefix("model '%s': copying parameters from '%s'", dst->label.c_str(), src->label.c_str());
    return rc;
}

#if DEV_STREAMS
/* "model 'x': CUDA device 0: cudaMemcpyAsync failed: ..." (the call up to its '(') */
static int cuda_err(const djct_model *m, const char *call, cudaError_t e)
{
    return djct_error_set(DJCT_ENCCL, "model '%s': CUDA device %d: %.*s failed: %s", m->label.c_str(),
                          (int)m->device.index(), (int)strcspn(call, "("), call, cudaGetErrorString(e));
}
#define CUDA_TRY(m, call)                                                                     \
    do {                                                                                      \
        cudaError_t e_ = (call);                                                              \
        if (e_ != cudaSuccess)                                                                \
            return cuda_err((m), #call, e_);                                                  \
    } while (0)
#endif

#if DEV_STREAMS
static cudaStream_t current_stream(const djct_model *m)
{
    return c10::cuda::getCurrentCUDAStream(m->device.index()).stream();
}
#endif

extern "C" int djct_model_cuda_stream(djct_model *m, void **stream) noexcept
{
    DJCT_CHECK_ARG(m);
    DJCT_CHECK_ARG(stream);
    *stream = nullptr;
    if (!m->device.is_cuda())
        return 0;
#if DEV_STREAMS
    return guard([&] {
        /* libtorch's default stream is the null stream, whose handle is 0: hand it over as
         * cudaStreamLegacy (the same stream), so that NULL keeps meaning "no stream" to comm */
        cudaStream_t s = current_stream(m);
        *stream = (void *)(s ? s : cudaStreamLegacy);
        return 0;
    });
#else
    return djct_error_set(DJCT_ENOTSUP, "model '%s' is on CUDA but this djct cannot reach libtorch's CUDA streams "
                          "(built without CUDA or without libtorch's c10/cuda headers); rebuild with a CUDA "
                          "libtorch (TORCH_PYTHON= or LIBTORCH=) and CUDA_HOME", m->label.c_str());
#endif
}

/* ---- staged batches ------------------------------------------------------------------------------ */

static size_t piece_bytes(const djct_piece &pc)
{
    size_t n = c10::elementSize(pc.st);
    for (int64_t s : pc.sizes)
        n *= (size_t)s;
    return n;
}

#if DEV_STREAMS
/* the copy stream, the slot events and the mark, once, on the model's device */
static int stager_init(djct_model *m)
{
    djct_stager &st = m->stager;
    if (st.stream)
        return 0;
    CUDA_TRY(m, cudaSetDevice(m->device.index()));
    cudaStream_t s;
    CUDA_TRY(m, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    st.stream = (void *)s;
    cudaEvent_t e;
    for (int i = 0; i < 3; i++) {
        CUDA_TRY(m, cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
        *(i < 2 ? &st.slot_done[i] : &st.mark) = (void *)e;
    }
    return 0;
}

/* the pieces to the device: pinned slot, then non-blocking copies on the copy stream */
static int stage_cuda(djct_model *m, const std::vector<djct_piece> &pieces, std::vector<torch::Tensor> &dev)
{
    int err = stager_init(m);
    if (err < 0)
        return err;
    djct_stager &st = m->stager;
    int s = st.next;
    st.next ^= 1;
    /* the slot's last copy must have read it before the host writes it again */
    CUDA_TRY(m, cudaEventSynchronize((cudaEvent_t)st.slot_done[s]));
    size_t total = 0;
    for (const auto &pc : pieces)
        total += (piece_bytes(pc) + 255) & ~(size_t)255;
    if (total > st.cap[s]) {
        if (st.slot[s])
            CUDA_TRY(m, cudaFreeHost(st.slot[s]));
        st.slot[s] = nullptr;
        st.cap[s] = 0;
        size_t cap = total + total / 4; /* room for the next, slightly larger batches */
        CUDA_TRY(m, cudaHostAlloc(&st.slot[s], cap, cudaHostAllocDefault));
        st.cap[s] = cap;
    }
    char *host = (char *)st.slot[s];
    for (size_t i = 0, off = 0; i < pieces.size(); i++) {
        size_t b = piece_bytes(pieces[i]);
        if (b)
            memcpy(host + off, pieces[i].data, b);
        /* allocated for the current stream, written on the copy stream (ordered below) */
        dev.push_back(torch::empty(pieces[i].sizes, torch::TensorOptions().dtype(pieces[i].st).device(m->device)));
        off += (b + 255) & ~(size_t)255;
    }
    cudaStream_t cs = (cudaStream_t)st.stream, cur = current_stream(m);
    CUDA_TRY(m, cudaEventRecord((cudaEvent_t)st.mark, cur));
    CUDA_TRY(m, cudaStreamWaitEvent(cs, (cudaEvent_t)st.mark, 0));
    for (size_t i = 0, off = 0; i < pieces.size(); i++) {
        size_t b = piece_bytes(pieces[i]);
        if (b)
            CUDA_TRY(m, cudaMemcpyAsync(dev[i].data_ptr(), host + off, b, cudaMemcpyHostToDevice, cs));
        off += (b + 255) & ~(size_t)255;
    }
    CUDA_TRY(m, cudaEventRecord((cudaEvent_t)st.slot_done[s], cs));
    return s;
}
#endif

extern "C" int djct_model_stage(djct_model *m, const djct_array *features, size_t n_features,
                                const djct_array *targets, size_t n_targets) noexcept
{
    DJCT_CHECK_ARG(m);
    DJCT_CHECK_ARG(features || n_features == 0);
    DJCT_CHECK_ARG(targets || n_targets == 0);
    int rc = guard([&] {
        std::vector<djct_piece> pieces;
        size_t nf = 0;
        int err = djct_batch_pieces(m, features, n_features, targets, n_targets, pieces, &nf);
        if (err < 0)
            return err;
        std::vector<torch::Tensor> dev;
        djct_staged b;
        if (m->device.is_cpu()) {
            for (const auto &pc : pieces) {
                auto opt = torch::TensorOptions().dtype(pc.st);
                dev.push_back(piece_bytes(pc) && pc.data ? torch::from_blob(pc.data, pc.sizes, opt).clone()
                                                         : torch::empty(pc.sizes, opt));
            }
        } else {
#if DEV_STREAMS
            int s = stage_cuda(m, pieces, dev);
            if (s < 0)
                return s;
            b.copied = m->stager.slot_done[s];
#else
            void *unused = nullptr;
            return djct_model_cuda_stream(m, &unused); /* the refusal */
#endif
        }
        b.feats.assign(dev.begin(), dev.begin() + (ptrdiff_t)nf);
        b.tgts.assign(dev.begin() + (ptrdiff_t)nf, dev.end());
        b.has_targets = targets != nullptr;
        m->staged.push_back(std::move(b));
        return 0;
    });
    if (rc == DJCT_ETORCH)
        djct_error_prefix("model '%s': staging a batch", m->label.c_str());
    return rc;
}

#if DEV_STREAMS
/* the current stream waits for the batch's copies */
static int wait_copied(djct_model *m, const djct_staged &b)
{
    if (b.copied)
        CUDA_TRY(m, cudaStreamWaitEvent(current_stream(m), (cudaEvent_t)b.copied, 0));
    return 0;
}
#endif

extern "C" int djct_model_forward_staged(djct_model *m) noexcept
{
    DJCT_CHECK_ARG(m);
    if (m->staged.empty())
        return djct_error_set(DJCT_EINVAL, "model '%s': forward of a staged batch, but none is staged; call "
                              "djct_model_stage first", m->label.c_str());
    int rc = guard([&] {
        djct_model_forget_forward(m);
        djct_staged b = std::move(m->staged.front());
        m->staged.pop_front();
#if DEV_STREAMS
        int err = wait_copied(m, b);
        if (err < 0)
            return err;
#endif
        c10::List<at::Tensor> feats, tgts;
        for (auto &t : b.feats)
            feats.push_back(t);
        for (auto &t : b.tgts)
            tgts.push_back(t);
        return djct_model_run_forward(m, feats, tgts, b.has_targets);
    });
    if (rc == DJCT_ETORCH)
        djct_error_prefix("model '%s': forward", m->label.c_str());
    return rc;
}

extern "C" size_t djct_model_n_staged(const djct_model *m) noexcept
{
    return m ? m->staged.size() : 0;
}

extern "C" int djct_model_drop_staged(djct_model *m) noexcept
{
    DJCT_CHECK_ARG(m);
    return guard([&] {
        while (!m->staged.empty()) {
#if DEV_STREAMS
            /* its memory goes back to the allocator for the current stream: after the copies */
            int err = wait_copied(m, m->staged.front());
            if (err < 0)
                return err;
#endif
            m->staged.pop_front();
        }
        return 0;
    });
}

void djct_model_release_device(djct_model *m) noexcept
{
#if DEV_CUDA
    djct_stager &st = m->stager;
    if (!st.stream)
        return;
    /* nothing may still read the slots or write the staged tensors */
    cudaStreamSynchronize((cudaStream_t)st.stream);
    m->staged.clear();
    for (int i = 0; i < 2; i++) {
        if (st.slot[i])
            cudaFreeHost(st.slot[i]);
        if (st.slot_done[i])
            cudaEventDestroy((cudaEvent_t)st.slot_done[i]);
    }
    if (st.mark)
        cudaEventDestroy((cudaEvent_t)st.mark);
    cudaStreamDestroy((cudaStream_t)st.stream);
    st = djct_stager();
#else
    (void)m;
#endif
}
