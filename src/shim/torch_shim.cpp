// torch_shim.cpp — the project's only C++: implements torch_shim.h over libtorch.
// Every entry point catches c10::Error, std::exception and ... so that no
// exception crosses into C; failures set a thread-local message. Handles are
// heap-allocated wrappers around at::Tensor, registered in the innermost open
// scope of the creating thread. Only APIs present in libtorch 1.13 and 2.x.
#include "shim/torch_shim.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/InferenceMode.h>
#include <c10/core/GradMode.h>
#include <torch/torch.h>
#include <caffe2/serialize/inline_container.h>

#include <atomic>
#include <cstdlib>
#include <dlfcn.h>
#include <mutex>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <unordered_map>
#include <cmath>
#include <limits>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <unistd.h>
#include <memory>
#include <string>
#include <thread>
#include <vector>

struct dhf_tensor_s {
    at::Tensor t;
    int scope;      // scope depth it is registered in (0 = unscoped)
    size_t slot;    // index in that scope's list
};

namespace {

thread_local std::string g_err;
std::atomic<long> g_live{0};

struct Scope {
    std::vector<dhf_tensor> handles;
};
thread_local std::vector<Scope> g_scopes;
thread_local std::vector<std::unique_ptr<c10::InferenceMode>> g_inference;

dhf_status fail(dhf_status st, const std::string &msg)
{
    g_err = msg;
    return st;
}

dhf_tensor wrap(at::Tensor t)
{
    auto *h = new dhf_tensor_s{std::move(t), 0, 0};
    g_live++;
    if (!g_scopes.empty()) {
        h->scope = (int)g_scopes.size();
        h->slot = g_scopes.back().handles.size();
        g_scopes.back().handles.push_back(h);
    }
    return h;
}

void unregister(dhf_tensor h)
{
    if (h->scope > 0 && h->scope <= (int)g_scopes.size()) {
        auto &v = g_scopes[h->scope - 1].handles;
        if (h->slot < v.size() && v[h->slot] == h)
            v[h->slot] = nullptr;
    }
    h->scope = 0;
}

void destroy(dhf_tensor h)
{
    delete h;
    g_live--;
}

c10::ScalarType to_scalar(dhf_dtype dt)
{
    switch (dt) {
    case DHF_F32: return at::kFloat;
    case DHF_F16: return at::kHalf;
    case DHF_BF16: return at::kBFloat16;
    case DHF_F64: return at::kDouble;
    case DHF_I64: return at::kLong;
    case DHF_I32: return at::kInt;
    case DHF_U8: return at::kByte;
    case DHF_BOOL: return at::kBool;
    }
    throw std::invalid_argument("unknown dhf_dtype " + std::to_string((int)dt));
}

dhf_dtype from_scalar(c10::ScalarType st)
{
    switch (st) {
    case at::kFloat: return DHF_F32;
    case at::kHalf: return DHF_F16;
    case at::kBFloat16: return DHF_BF16;
    case at::kDouble: return DHF_F64;
    case at::kLong: return DHF_I64;
    case at::kInt: return DHF_I32;
    case at::kByte: return DHF_U8;
    case at::kBool: return DHF_BOOL;
    default: break;
    }
    throw std::invalid_argument(std::string("tensor has a dtype the shim does not map: ") +
                                c10::toString(st));
}

c10::Device to_device(dhf_device d)
{
    if (d.type == DHF_CUDA)
        return c10::Device(c10::DeviceType::CUDA, (c10::DeviceIndex)d.index);
    return c10::Device(c10::DeviceType::CPU);
}

at::IntArrayRef dims(const int64_t *shape, int ndim)
{
    if (ndim < 0 || ndim > DHF_MAX_DIMS)
        throw std::invalid_argument("ndim " + std::to_string(ndim) + " outside 0.." +
                                    std::to_string(DHF_MAX_DIMS));
    if (ndim > 0 && !shape)
        throw std::invalid_argument("shape is NULL");
    return at::IntArrayRef(shape, (size_t)ndim);
}

const at::Tensor &T(dhf_tensor h, const char *what = "tensor")
{
    if (!h)
        throw std::invalid_argument(std::string(what) + " handle is NULL");
    return h->t;
}

// Runs f, converting every exception into a status and message.
template <class F> dhf_status guard(const char *fn, F &&f)
{
    try {
        f();
        return DHF_OK;
    } catch (const c10::Error &e) {
        return fail(DHF_ERR_TORCH, std::string(fn) + ": " + e.what_without_backtrace());
    } catch (const std::invalid_argument &e) {
        return fail(DHF_ERR_ARG, std::string(fn) + ": " + e.what());
    } catch (const std::bad_alloc &) {
        return fail(DHF_ERR_OOM, std::string(fn) + ": out of memory");
    } catch (const std::exception &e) {
        return fail(DHF_ERR_TORCH, std::string(fn) + ": " + e.what());
    } catch (...) {
        return fail(DHF_ERR_TORCH, std::string(fn) + ": unknown C++ exception");
    }
}

// Produces a NEW handle into *out from an expression returning at::Tensor.
template <class F> dhf_status make(const char *fn, dhf_tensor *out, F &&f)
{
    if (!out)
        return fail(DHF_ERR_ARG, std::string(fn) + ": out is NULL");
    return guard(fn, [&] { *out = wrap(f()); });
}

} // namespace

#define MAKE(out, expr) make(__func__, out, [&]() -> at::Tensor { return (expr); })
#define GUARD(body) guard(__func__, [&]() { body; })

extern "C" {

// ---- errors, lifetime, runtime ---------------------------------------------
const char *dhf_last_error(void) { return g_err.c_str(); }
void dhf_clear_error(void) { g_err.clear(); }

void dhf_free(dhf_tensor t)
{
    if (!t)
        return;
    unregister(t);
    destroy(t);
}

long dhf_live_tensors(void) { return g_live.load(); }

size_t dhf_dtype_size(dhf_dtype dt)
{
    switch (dt) {
    case DHF_F32: case DHF_I32: return 4;
    case DHF_F16: case DHF_BF16: return 2;
    case DHF_F64: case DHF_I64: return 8;
    case DHF_U8: case DHF_BOOL: return 1;
    }
    return 0;
}

const char *dhf_dtype_name(dhf_dtype dt)
{
    static const char *names[] = {"f32", "f16", "bf16", "f64", "i64", "i32", "u8", "bool"};
    return (unsigned)dt < 8 ? names[dt] : "?";
}

void dhf_scope_begin(void) { g_scopes.emplace_back(); }

dhf_status dhf_scope_end(void)
{
    if (g_scopes.empty())
        return fail(DHF_ERR_STATE, "dhf_scope_end: no scope is open");
    Scope s = std::move(g_scopes.back());
    g_scopes.pop_back();
    for (dhf_tensor h : s.handles)
        if (h)
            destroy(h);
    return DHF_OK;
}

int dhf_scope_depth(void) { return (int)g_scopes.size(); }

dhf_status dhf_keep(dhf_tensor t)
{
    if (!t)
        return fail(DHF_ERR_ARG, "dhf_keep: handle is NULL");
    if (t->scope == 0)
        return DHF_OK;
    int depth = t->scope;
    unregister(t);
    if (depth >= 2 && depth - 1 <= (int)g_scopes.size()) {
        auto &parent = g_scopes[depth - 2].handles;
        t->scope = depth - 1;
        t->slot = parent.size();
        parent.push_back(t);
    }
    return DHF_OK;
}

dhf_status dhf_set_num_threads(int n)
{
    return GUARD({
        if (n <= 0) {
            unsigned hc = std::thread::hardware_concurrency();
            n = hc ? (int)hc : 1;
        }
        at::set_num_threads(n);
    });
}

int dhf_get_num_threads(void) { return at::get_num_threads(); }

dhf_status dhf_set_blas_threads(int n, int *applied)
{
    if (applied)
        *applied = 0;
    typedef void (*set_fn)(int);
    // Looked up at run time: no link dependency on a particular BLAS.
    auto fn = (set_fn)dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
    if (!fn)
        return DHF_OK;
    if (n <= 0) {
        const char *env = std::getenv("DHF_BLAS_THREADS");
        if (env && *env) {
            char *end = nullptr;
            long v = std::strtol(env, &end, 10);
            if (*end || v < 1 || v > 4096)
                return fail(DHF_ERR_ARG, std::string("DHF_BLAS_THREADS='") + env +
                                             "': expected an integer 1..4096");
            n = (int)v;
        } else {
            n = 1;
        }
    }
    fn(n);
    if (applied)
        *applied = n;
    return DHF_OK;
}

// ---- caching CPU allocator ----------------------------------------------------
namespace {

constexpr size_t kAlign = 64;
constexpr size_t kCacheMin = 256 * 1024;    // smaller blocks go straight to malloc
constexpr size_t kRound = 64 * 1024;

// Data pointer == context pointer, as libtorch's default allocator gives: oneDNN
// paths assert it. Block sizes therefore live in a side table.
struct CachingCPUAllocator final : public at::Allocator {
    mutable std::mutex mu;
    mutable std::unordered_map<size_t, std::vector<void *>> free_lists;
    mutable std::unordered_map<void *, size_t> live;
    mutable size_t in_use = 0, cached = 0, peak = 0;
    std::atomic<bool> caching{true};
    at::Allocator *previous = nullptr;

    static size_t rounded(size_t n)
    {
        if (n == 0)
            n = 1;
        return n < kCacheMin ? (n + kAlign - 1) / kAlign * kAlign : (n + kRound - 1) / kRound * kRound;
    }

    // libtorch 1.13 declares allocate() const, 2.3+ non-const: define both, without
    // `override`, so whichever the headers declare is overridden.
    at::DataPtr allocate(size_t n) { return static_cast<const CachingCPUAllocator *>(this)->allocate(n); }
    at::DataPtr allocate(size_t n) const
    {
        size_t sz = rounded(n);
        void *p = nullptr;
        {
            std::lock_guard<std::mutex> lk(mu);
            if (sz >= kCacheMin) {
                auto it = free_lists.find(sz);
                if (it != free_lists.end() && !it->second.empty()) {
                    p = it->second.back();
                    it->second.pop_back();
                    cached -= sz;
                }
            }
        }
        if (!p && (posix_memalign(&p, kAlign, sz) != 0 || !p))
            throw std::bad_alloc();
        {
            std::lock_guard<std::mutex> lk(mu);
            live[p] = sz;
            in_use += sz;
            if (in_use + cached > peak)
                peak = in_use + cached;
        }
        return {p, p, &CachingCPUAllocator::release, at::Device(at::DeviceType::CPU)};
    }

    static void release(void *p);

    // raw_allocate/raw_deallocate (used by oneDNN) need a raw deleter.
    at::DeleterFnPtr raw_deleter() const override { return &CachingCPUAllocator::release; }

    // Pure virtual in newer libtorch (2.x), absent in 1.13: declared without
    // `override` so the same source builds against both.
    void copy_data(void *dest, const void *src, std::size_t count) const
    {
        std::memcpy(dest, src, count);
    }

    void trim() const
    {
        std::lock_guard<std::mutex> lk(mu);
        for (auto &kv : free_lists)
            for (void *p : kv.second)
                std::free(p);
        free_lists.clear();
        cached = 0;
    }
};

CachingCPUAllocator *g_caching = nullptr;   // lives for the process (blocks point at it)

void CachingCPUAllocator::release(void *p)
{
    if (!p)
        return;
    CachingCPUAllocator *a = g_caching;
    std::lock_guard<std::mutex> lk(a->mu);
    auto it = a->live.find(p);
    size_t sz = it != a->live.end() ? it->second : 0;
    if (it != a->live.end())
        a->live.erase(it);
    a->in_use -= sz;
    if (sz >= kCacheMin && a->caching.load()) {
        a->free_lists[sz].push_back(p);
        a->cached += sz;
    } else {
        std::free(p);
    }
}

} // namespace

dhf_status dhf_cpu_caching_allocator(bool enable)
{
    return GUARD({
        if (enable) {
            if (!g_caching)
                g_caching = new CachingCPUAllocator();
            if (c10::GetCPUAllocator() != g_caching) {
                g_caching->previous = c10::GetCPUAllocator();
                g_caching->caching = true;
                // Priority 1 outranks libtorch's default registration (0).
                c10::SetCPUAllocator(g_caching, 1);
            }
        } else if (g_caching && c10::GetCPUAllocator() == g_caching) {
            g_caching->caching = false;
            g_caching->trim();
            c10::SetCPUAllocator(g_caching->previous, 1);
        }
    });
}

dhf_status dhf_cpu_allocator_trim(void)
{
    return GUARD({
        if (g_caching)
            g_caching->trim();
#if defined(__GLIBC__)
        malloc_trim(0);
#endif
    });
}

void dhf_cpu_allocator_stats(size_t *in_use, size_t *cached, size_t *peak)
{
    size_t a = 0, b = 0, c = 0;
    if (g_caching) {
        std::lock_guard<std::mutex> lk(g_caching->mu);
        a = g_caching->in_use;
        b = g_caching->cached;
        c = g_caching->peak;
    }
    if (in_use)
        *in_use = a;
    if (cached)
        *cached = b;
    if (peak)
        *peak = c;
}

const char *dhf_torch_version(void)
{
    static std::string v = std::to_string(TORCH_VERSION_MAJOR) + "." +
                           std::to_string(TORCH_VERSION_MINOR) + "." +
                           std::to_string(TORCH_VERSION_PATCH);
    return v.c_str();
}

bool dhf_cuda_available(void)
{
    try {
        return torch::cuda::is_available();
    } catch (...) {
        return false;
    }
}

int dhf_cuda_device_count(void)
{
    try {
        return (int)torch::cuda::device_count();
    } catch (...) {
        return 0;
    }
}

const char *dhf_torch_config(void)
{
    static std::string cfg;
    try {
        if (cfg.empty())
            cfg = at::show_config();
    } catch (...) {
        cfg = "(unavailable)";
    }
    return cfg.c_str();
}

dhf_status dhf_manual_seed(uint64_t seed) { return GUARD(torch::manual_seed(seed)); }

dhf_status dhf_device_parse(const char *s, dhf_device *out)
{
    if (!s || !out)
        return fail(DHF_ERR_ARG, "dhf_device_parse: NULL argument");
    if (std::strcmp(s, "cpu") == 0) {
        *out = {DHF_CPU, 0};
        return DHF_OK;
    }
    if (std::strncmp(s, "cuda", 4) == 0) {
        int idx = 0;
        if (s[4] == ':') {
            char *end = nullptr;
            long v = std::strtol(s + 5, &end, 10);
            if (!s[5] || *end || v < 0 || v > 255)
                return fail(DHF_ERR_ARG, std::string("device '") + s +
                                             "': expected cpu, cuda or cuda:N");
            idx = (int)v;
        } else if (s[4] != '\0') {
            return fail(DHF_ERR_ARG, std::string("device '") + s +
                                         "': expected cpu, cuda or cuda:N");
        }
        *out = {DHF_CUDA, idx};
        return DHF_OK;
    }
    return fail(DHF_ERR_ARG, std::string("device '") + s + "': expected cpu, cuda or cuda:N");
}

dhf_status dhf_cuda_synchronize(void)
{
    return GUARD({
        if (torch::cuda::is_available())
            torch::cuda::synchronize();
    });
}

// ---- creation and C buffers -------------------------------------------------
dhf_status dhf_from_buffer(const void *data, dhf_dtype dt, const int64_t *shape, int ndim,
                           dhf_tensor *out)
{
    return MAKE(out, ({
        auto sz = dims(shape, ndim);
        auto t = at::empty(sz, at::TensorOptions().dtype(to_scalar(dt)));
        size_t nbytes = (size_t)t.numel() * dhf_dtype_size(dt);
        if (nbytes && !data)
            throw std::invalid_argument("data is NULL");
        if (nbytes)
            std::memcpy(t.data_ptr(), data, nbytes);
        t;
    }));
}

dhf_status dhf_from_blob(void *data, dhf_dtype dt, const int64_t *shape, int ndim,
                         dhf_tensor *out)
{
    return MAKE(out, at::from_blob(data, dims(shape, ndim),
                                   at::TensorOptions().dtype(to_scalar(dt))));
}

static at::TensorOptions opts(dhf_dtype dt, dhf_device dev)
{
    return at::TensorOptions().dtype(to_scalar(dt)).device(to_device(dev));
}

dhf_status dhf_empty(dhf_dtype dt, dhf_device dev, const int64_t *shape, int ndim,
                     dhf_tensor *out)
{
    return MAKE(out, at::empty(dims(shape, ndim), opts(dt, dev)));
}

dhf_status dhf_zeros(dhf_dtype dt, dhf_device dev, const int64_t *shape, int ndim,
                     dhf_tensor *out)
{
    return MAKE(out, at::zeros(dims(shape, ndim), opts(dt, dev)));
}

dhf_status dhf_ones(dhf_dtype dt, dhf_device dev, const int64_t *shape, int ndim,
                    dhf_tensor *out)
{
    return MAKE(out, at::ones(dims(shape, ndim), opts(dt, dev)));
}

dhf_status dhf_full(double value, dhf_dtype dt, dhf_device dev, const int64_t *shape,
                    int ndim, dhf_tensor *out)
{
    return MAKE(out, at::full(dims(shape, ndim), value, opts(dt, dev)));
}

dhf_status dhf_scalar_tensor(double value, dhf_dtype dt, dhf_tensor *out)
{
    return MAKE(out, at::scalar_tensor(value, at::TensorOptions().dtype(to_scalar(dt))));
}

dhf_status dhf_arange(double start, double end, double step, dhf_dtype dt, dhf_tensor *out)
{
    return MAKE(out, at::arange(start, end, step, at::TensorOptions().dtype(to_scalar(dt))));
}

static at::Generator seeded(uint64_t seed)
{
    auto g = at::detail::createCPUGenerator(seed);
    return g;
}

dhf_status dhf_randn(uint64_t seed, dhf_dtype dt, const int64_t *shape, int ndim,
                     dhf_tensor *out)
{
    return MAKE(out, at::randn(dims(shape, ndim), seeded(seed),
                               at::TensorOptions().dtype(to_scalar(dt))));
}

dhf_status dhf_rand(uint64_t seed, dhf_dtype dt, const int64_t *shape, int ndim,
                    dhf_tensor *out)
{
    return MAKE(out, at::rand(dims(shape, ndim), seeded(seed),
                              at::TensorOptions().dtype(to_scalar(dt))));
}

dhf_status dhf_normal_(dhf_tensor t, double mean, double std, uint64_t seed)
{
    return GUARD({
        at::NoGradGuard ng;
        auto g = seeded(seed);
        auto &x = const_cast<at::Tensor &>(T(t));
        if (x.is_cuda()) {
            auto tmp = at::empty(x.sizes(), x.options().device(at::kCPU));
            tmp.normal_(mean, std, g);
            x.copy_(tmp);
        } else {
            x.normal_(mean, std, g);
        }
    });
}

dhf_status dhf_uniform_(dhf_tensor t, double lo, double hi, uint64_t seed)
{
    return GUARD({
        at::NoGradGuard ng;
        auto g = seeded(seed);
        auto &x = const_cast<at::Tensor &>(T(t));
        if (x.is_cuda()) {
            auto tmp = at::empty(x.sizes(), x.options().device(at::kCPU));
            tmp.uniform_(lo, hi, g);
            x.copy_(tmp);
        } else {
            x.uniform_(lo, hi, g);
        }
    });
}

dhf_status dhf_to_buffer(dhf_tensor t, dhf_dtype dt, void *buf, size_t nbytes)
{
    return GUARD({
        auto x = T(t).detach().to(at::kCPU, to_scalar(dt)).contiguous();
        size_t need = (size_t)x.numel() * dhf_dtype_size(dt);
        if (need != nbytes)
            throw std::invalid_argument("buffer holds " + std::to_string(nbytes) +
                                        " bytes, tensor needs " + std::to_string(need));
        if (need && !buf)
            throw std::invalid_argument("buffer is NULL");
        if (need)
            std::memcpy(buf, x.data_ptr(), need);
    });
}

void *dhf_data_ptr(dhf_tensor t)
{
    if (!t || !t->t.defined() || !t->t.is_contiguous() || !t->t.device().is_cpu())
        return nullptr;
    return t->t.data_ptr();
}

void *dhf_strided_data_ptr(dhf_tensor t)
{
    if (!t || !t->t.defined() || !t->t.device().is_cpu() || t->t.layout() != at::kStrided)
        return nullptr;
    return t->t.data_ptr();
}

dhf_status dhf_item_checked(dhf_tensor t, double *value)
{
    return GUARD({
        if (T(t).numel() < 1)
            throw std::invalid_argument("tensor is empty");
        *value = T(t).reshape({-1})[0].item<double>();
    });
}

double dhf_item(dhf_tensor t)
{
    double v = NAN;
    if (dhf_item_checked(t, &v) != DHF_OK)
        return NAN;
    return v;
}

// ---- metadata ----------------------------------------------------------------
int dhf_ndim(dhf_tensor t) { return t ? (int)t->t.dim() : -1; }

int64_t dhf_size(dhf_tensor t, int dim)
{
    if (!t)
        return -1;
    int nd = (int)t->t.dim();
    if (dim < 0)
        dim += nd;
    if (dim < 0 || dim >= nd)
        return -1;
    return t->t.size(dim);
}

int64_t dhf_numel(dhf_tensor t) { return t ? t->t.numel() : -1; }

dhf_status dhf_shape(dhf_tensor t, int64_t *shape, int *ndim)
{
    return GUARD({
        int nd = (int)T(t).dim();
        if (nd > DHF_MAX_DIMS)
            throw std::invalid_argument("tensor has more than DHF_MAX_DIMS dims");
        for (int i = 0; i < nd; i++)
            shape[i] = T(t).size(i);
        *ndim = nd;
    });
}

dhf_status dhf_strides(dhf_tensor t, int64_t *strides, int *ndim)
{
    return GUARD({
        int nd = (int)T(t).dim();
        if (nd > DHF_MAX_DIMS)
            throw std::invalid_argument("tensor has more than DHF_MAX_DIMS dims");
        for (int i = 0; i < nd; i++)
            strides[i] = T(t).stride(i);
        *ndim = nd;
    });
}

dhf_dtype dhf_get_dtype(dhf_tensor t)
{
    try {
        return from_scalar(T(t).scalar_type());
    } catch (...) {
        return DHF_F32;
    }
}

dhf_device dhf_get_device(dhf_tensor t)
{
    if (t && t->t.is_cuda())
        return {DHF_CUDA, (int)t->t.device().index()};
    return {DHF_CPU, 0};
}

bool dhf_is_contiguous(dhf_tensor t) { return t && t->t.is_contiguous(); }

void dhf_describe(dhf_tensor t, char *buf, size_t n)
{
    if (!buf || !n)
        return;
    if (!t) {
        std::snprintf(buf, n, "(null)");
        return;
    }
    std::string s = "[";
    for (int64_t i = 0; i < t->t.dim(); i++)
        s += (i ? ", " : "") + std::to_string(t->t.size(i));
    s += "] ";
    try {
        s += dhf_dtype_name(from_scalar(t->t.scalar_type()));
    } catch (...) {
        s += "?";
    }
    s += t->t.is_cuda() ? " cuda" : " cpu";
    std::snprintf(buf, n, "%s", s.c_str());
}

// ---- conversion, copies --------------------------------------------------------
dhf_status dhf_to(dhf_tensor t, dhf_dtype dt, dhf_device dev, dhf_tensor *out)
{
    return MAKE(out, T(t).to(to_device(dev), to_scalar(dt)));
}

dhf_status dhf_to_dtype(dhf_tensor t, dhf_dtype dt, dhf_tensor *out)
{
    return MAKE(out, T(t).to(to_scalar(dt)));
}

dhf_status dhf_clone(dhf_tensor t, dhf_tensor *out) { return MAKE(out, T(t).clone()); }
dhf_status dhf_contiguous(dhf_tensor t, dhf_tensor *out) { return MAKE(out, T(t).contiguous()); }
dhf_status dhf_detach(dhf_tensor t, dhf_tensor *out) { return MAKE(out, T(t).detach()); }

dhf_status dhf_copy_(dhf_tensor dst, dhf_tensor src)
{
    return GUARD(const_cast<at::Tensor &>(T(dst, "dst")).copy_(T(src, "src")));
}

dhf_status dhf_fill_(dhf_tensor t, double value)
{
    return GUARD(const_cast<at::Tensor &>(T(t)).fill_(value));
}

dhf_status dhf_zero_(dhf_tensor t) { return GUARD(const_cast<at::Tensor &>(T(t)).zero_()); }

dhf_status dhf_set_(dhf_tensor dst, dhf_tensor src)
{
    return GUARD({
        T(dst, "dst");
        dst->t = T(src, "src");
    });
}

dhf_status dhf_resize_(dhf_tensor t, const int64_t *shape, int ndim)
{
    return GUARD(const_cast<at::Tensor &>(T(t)).resize_(dims(shape, ndim)));
}

// ---- shape ops ------------------------------------------------------------------
dhf_status dhf_reshape(dhf_tensor t, const int64_t *shape, int ndim, dhf_tensor *out)
{
    return MAKE(out, T(t).reshape(dims(shape, ndim)));
}

dhf_status dhf_view(dhf_tensor t, const int64_t *shape, int ndim, dhf_tensor *out)
{
    return MAKE(out, T(t).view(dims(shape, ndim)));
}

dhf_status dhf_permute(dhf_tensor t, const int64_t *d, int ndim, dhf_tensor *out)
{
    return MAKE(out, T(t).permute(dims(d, ndim)));
}

dhf_status dhf_transpose(dhf_tensor t, int d0, int d1, dhf_tensor *out)
{
    return MAKE(out, T(t).transpose(d0, d1));
}

dhf_status dhf_narrow(dhf_tensor t, int dim, int64_t start, int64_t length, dhf_tensor *out)
{
    return MAKE(out, T(t).narrow(dim, start, length));
}

dhf_status dhf_select(dhf_tensor t, int dim, int64_t index, dhf_tensor *out)
{
    return MAKE(out, T(t).select(dim, index));
}

dhf_status dhf_unsqueeze(dhf_tensor t, int dim, dhf_tensor *out)
{
    return MAKE(out, T(t).unsqueeze(dim));
}

dhf_status dhf_squeeze_dim(dhf_tensor t, int dim, dhf_tensor *out)
{
    return MAKE(out, T(t).squeeze(dim));
}

dhf_status dhf_flatten(dhf_tensor t, int start_dim, int end_dim, dhf_tensor *out)
{
    return MAKE(out, T(t).flatten(start_dim, end_dim));
}

dhf_status dhf_expand(dhf_tensor t, const int64_t *shape, int ndim, dhf_tensor *out)
{
    return MAKE(out, T(t).expand(dims(shape, ndim)));
}

static std::vector<at::Tensor> tensor_list(const dhf_tensor *ts, int n)
{
    if (n <= 0 || !ts)
        throw std::invalid_argument("empty tensor list");
    std::vector<at::Tensor> v;
    v.reserve((size_t)n);
    for (int i = 0; i < n; i++)
        v.push_back(T(ts[i]));
    return v;
}

dhf_status dhf_cat(const dhf_tensor *ts, int n, int dim, dhf_tensor *out)
{
    return MAKE(out, at::cat(tensor_list(ts, n), dim));
}

dhf_status dhf_stack(const dhf_tensor *ts, int n, int dim, dhf_tensor *out)
{
    return MAKE(out, at::stack(tensor_list(ts, n), dim));
}

static dhf_status emit_list(const char *fn, std::vector<at::Tensor> parts, dhf_tensor *outs,
                            int max_out, int *n_out)
{
    return guard(fn, [&] {
        if ((int)parts.size() > max_out)
            throw std::invalid_argument("result has " + std::to_string(parts.size()) +
                                        " parts, room for " + std::to_string(max_out));
        for (size_t i = 0; i < parts.size(); i++)
            outs[i] = wrap(parts[i]);
        if (n_out)
            *n_out = (int)parts.size();
    });
}

dhf_status dhf_chunk(dhf_tensor t, int chunks, int dim, dhf_tensor *outs, int *n_out)
{
    std::vector<at::Tensor> parts;
    dhf_status st = GUARD(parts = T(t).chunk(chunks, dim));
    if (st != DHF_OK)
        return st;
    return emit_list(__func__, parts, outs, chunks, n_out);
}

dhf_status dhf_split(dhf_tensor t, int64_t split_size, int dim, dhf_tensor *outs, int max_out,
                     int *n_out)
{
    std::vector<at::Tensor> parts;
    dhf_status st = GUARD(parts = T(t).split(split_size, dim));
    if (st != DHF_OK)
        return st;
    return emit_list(__func__, parts, outs, max_out, n_out);
}

dhf_status dhf_pad(dhf_tensor t, const int64_t *pads, int npads, double value, dhf_tensor *out)
{
    return MAKE(out, at::constant_pad_nd(T(t), at::IntArrayRef(pads, (size_t)npads), value));
}

dhf_status dhf_index_select(dhf_tensor t, int dim, dhf_tensor index, dhf_tensor *out)
{
    return MAKE(out, T(t).index_select(dim, T(index, "index")));
}

dhf_status dhf_gather(dhf_tensor t, int dim, dhf_tensor index, dhf_tensor *out)
{
    return MAKE(out, T(t).gather(dim, T(index, "index")));
}

dhf_status dhf_repeat_interleave(dhf_tensor t, int64_t repeats, int dim, dhf_tensor *out)
{
    return MAKE(out, T(t).repeat_interleave(repeats, dim));
}

// ---- elementwise ------------------------------------------------------------------
#define BINARY(name, expr)                                                        \
    dhf_status name(dhf_tensor a, dhf_tensor b, dhf_tensor *out)                  \
    {                                                                             \
        return MAKE(out, ({ const at::Tensor &A = T(a, "a"), &B = T(b, "b"); expr; })); \
    }
BINARY(dhf_add, A + B)
BINARY(dhf_sub, A - B)
BINARY(dhf_mul, A * B)
BINARY(dhf_div, A / B)

dhf_status dhf_add_scaled(dhf_tensor a, dhf_tensor b, double alpha, dhf_tensor *out)
{
    return MAKE(out, at::add(T(a, "a"), T(b, "b"), alpha));
}

#define INPLACE_BINARY(name, method)                                               \
    dhf_status name(dhf_tensor a, dhf_tensor b)                                    \
    {                                                                              \
        return GUARD(const_cast<at::Tensor &>(T(a, "a")).method(T(b, "b")));       \
    }
INPLACE_BINARY(dhf_add_, add_)
INPLACE_BINARY(dhf_mul_, mul_)
INPLACE_BINARY(dhf_div_, div_)

dhf_status dhf_add_scaled_(dhf_tensor a, dhf_tensor b, double alpha)
{
    return GUARD(const_cast<at::Tensor &>(T(a, "a")).add_(T(b, "b"), alpha));
}

dhf_status dhf_add_scalar(dhf_tensor a, double s, dhf_tensor *out) { return MAKE(out, T(a) + s); }
dhf_status dhf_mul_scalar(dhf_tensor a, double s, dhf_tensor *out) { return MAKE(out, T(a) * s); }
dhf_status dhf_div_scalar(dhf_tensor a, double s, dhf_tensor *out) { return MAKE(out, T(a) / s); }
dhf_status dhf_pow_scalar(dhf_tensor a, double e, dhf_tensor *out) { return MAKE(out, T(a).pow(e)); }

dhf_status dhf_add_scalar_(dhf_tensor a, double s)
{
    return GUARD(const_cast<at::Tensor &>(T(a)).add_(s));
}

dhf_status dhf_mul_scalar_(dhf_tensor a, double s)
{
    return GUARD(const_cast<at::Tensor &>(T(a)).mul_(s));
}

dhf_status dhf_clamp(dhf_tensor a, double lo, double hi, dhf_tensor *out)
{
    return MAKE(out, T(a).clamp(lo, hi));
}

#define UNARY(name, expr) \
    dhf_status name(dhf_tensor a, dhf_tensor *out) { return MAKE(out, ({ const at::Tensor &A = T(a); expr; })); }
UNARY(dhf_neg, -A)
UNARY(dhf_sqrt, A.sqrt())
UNARY(dhf_rsqrt, A.rsqrt())
UNARY(dhf_exp, A.exp())
UNARY(dhf_log, A.log())
UNARY(dhf_abs, A.abs())
UNARY(dhf_sin, A.sin())
UNARY(dhf_cos, A.cos())
UNARY(dhf_relu, at::relu(A))
UNARY(dhf_silu, at::silu(A))
UNARY(dhf_sigmoid, at::sigmoid(A))
UNARY(dhf_gelu, at::gelu(A))
UNARY(dhf_gelu_tanh, at::gelu(A, "tanh"))
UNARY(dhf_quick_gelu, A * at::sigmoid(A * 1.702))

dhf_status dhf_isfinite_all(dhf_tensor a, bool *all_finite)
{
    return GUARD(*all_finite = at::isfinite(T(a)).all().item<bool>());
}

dhf_status dhf_relu_(dhf_tensor a) { return GUARD(at::relu_(const_cast<at::Tensor &>(T(a)))); }
dhf_status dhf_silu_(dhf_tensor a) { return GUARD(at::silu_(const_cast<at::Tensor &>(T(a)))); }

dhf_status dhf_softmax(dhf_tensor a, int dim, dhf_tensor *out)
{
    return MAKE(out, at::softmax(T(a), dim));
}

dhf_status dhf_softmax_(dhf_tensor a, int dim)
{
    return GUARD({
        at::NoGradGuard ng;
        auto &x = const_cast<at::Tensor &>(T(a));
        at::_softmax_out(x, x, dim, false);
    });
}

dhf_status dhf_log_softmax(dhf_tensor a, int dim, dhf_tensor *out)
{
    return MAKE(out, at::log_softmax(T(a), dim));
}

// ---- reductions --------------------------------------------------------------------
dhf_status dhf_sum(dhf_tensor a, dhf_tensor *out) { return MAKE(out, T(a).sum()); }
dhf_status dhf_mean(dhf_tensor a, dhf_tensor *out) { return MAKE(out, T(a).mean()); }

dhf_status dhf_sum_dim(dhf_tensor a, int dim, bool keepdim, dhf_tensor *out)
{
    return MAKE(out, T(a).sum(dim, keepdim));
}

dhf_status dhf_mean_dim(dhf_tensor a, int dim, bool keepdim, dhf_tensor *out)
{
    return MAKE(out, T(a).mean(dim, keepdim));
}

dhf_status dhf_max_dim(dhf_tensor a, int dim, bool keepdim, dhf_tensor *values,
                       dhf_tensor *indices)
{
    return GUARD({
        auto r = T(a).max(dim, keepdim);
        // Wrap both only after the op succeeded, so a failure leaks nothing.
        if (values)
            *values = wrap(std::get<0>(r));
        if (indices)
            *indices = wrap(std::get<1>(r));
    });
}

dhf_status dhf_argmax(dhf_tensor a, int dim, bool keepdim, dhf_tensor *out)
{
    return MAKE(out, T(a).argmax(dim, keepdim));
}

dhf_status dhf_max_all(dhf_tensor a, double *value)
{
    return GUARD(*value = T(a).max().item<double>());
}

dhf_status dhf_max_abs_diff(dhf_tensor a, dhf_tensor b, double *value)
{
    return GUARD({
        auto d = (T(a, "a").to(at::kDouble) - T(b, "b").to(at::kDouble)).abs();
        *value = d.numel() ? d.max().item<double>() : 0.0;
    });
}

dhf_status dhf_norm_dim(dhf_tensor a, int dim, bool keepdim, dhf_tensor *out)
{
    return MAKE(out, at::norm(T(a), 2, {dim}, keepdim));
}

dhf_status dhf_l2_normalize(dhf_tensor a, int dim, double eps, dhf_tensor *out)
{
    return MAKE(out, ({
        auto n = at::norm(T(a), 2, {dim}, true);
        if (eps > 0)
            n = n.clamp_min(eps);
        T(a) / n;
    }));
}

// ---- linear algebra ------------------------------------------------------------------
dhf_status dhf_matmul(dhf_tensor a, dhf_tensor b, dhf_tensor *out)
{
    return MAKE(out, at::matmul(T(a, "a"), T(b, "b")));
}

dhf_status dhf_bmm(dhf_tensor a, dhf_tensor b, dhf_tensor *out)
{
    return MAKE(out, at::bmm(T(a, "a"), T(b, "b")));
}

dhf_status dhf_baddbmm(dhf_tensor c, dhf_tensor a, dhf_tensor b, double beta, double alpha,
                       dhf_tensor *out)
{
    return MAKE(out, at::baddbmm(T(c, "c"), T(a, "a"), T(b, "b"), beta, alpha));
}

dhf_status dhf_bmm_out(dhf_tensor out, dhf_tensor a, dhf_tensor b)
{
    return GUARD({
        auto &o = const_cast<at::Tensor &>(T(out, "out"));
        at::bmm_out(o, T(a, "a"), T(b, "b"));
    });
}

dhf_status dhf_matmul_out(dhf_tensor out, dhf_tensor a, dhf_tensor b)
{
    return GUARD({
        auto &o = const_cast<at::Tensor &>(T(out, "out"));
        at::matmul_out(o, T(a, "a"), T(b, "b"));
    });
}

dhf_status dhf_linear(dhf_tensor x, dhf_tensor w, dhf_tensor b, dhf_tensor *out)
{
    return MAKE(out, b ? at::linear(T(x, "x"), T(w, "w"), T(b, "b"))
                       : at::linear(T(x, "x"), T(w, "w")));
}

// ---- neural-network ops ----------------------------------------------------------------
dhf_status dhf_conv2d(dhf_tensor x, dhf_tensor w, dhf_tensor b, int stride_h, int stride_w,
                      int pad_h, int pad_w, int groups, dhf_tensor *out)
{
    return MAKE(out, ({
        c10::optional<at::Tensor> bias;
        if (b)
            bias = T(b, "bias");
        at::conv2d(T(x, "x"), T(w, "weight"), bias, {stride_h, stride_w}, {pad_h, pad_w},
                   {1, 1}, groups);
    }));
}

dhf_status dhf_group_norm(dhf_tensor x, int groups, dhf_tensor w, dhf_tensor b, double eps,
                          dhf_tensor *out)
{
    return MAKE(out, ({
        c10::optional<at::Tensor> W, B;
        if (w)
            W = T(w, "weight");
        if (b)
            B = T(b, "bias");
        at::group_norm(T(x, "x"), groups, W, B, eps);
    }));
}

dhf_status dhf_layer_norm(dhf_tensor x, dhf_tensor w, dhf_tensor b, double eps, dhf_tensor *out)
{
    return MAKE(out, ({
        const at::Tensor &X = T(x, "x");
        c10::optional<at::Tensor> W, B;
        if (w)
            W = T(w, "weight");
        if (b)
            B = T(b, "bias");
        at::layer_norm(X, {X.size(-1)}, W, B, eps);
    }));
}

dhf_status dhf_interpolate(dhf_tensor x, int64_t out_h, int64_t out_w, dhf_interp_mode mode,
                           bool align_corners, dhf_tensor *out)
{
    return MAKE(out, ({
        const at::Tensor &X = T(x, "x");
        if (X.dim() != 4)
            throw std::invalid_argument("interpolate expects NCHW (4 dims), got " +
                                        std::to_string(X.dim()));
        if (out_h <= 0 || out_w <= 0)
            throw std::invalid_argument("output size must be positive");
        mode == DHF_INTERP_NEAREST
            ? at::upsample_nearest2d(X, {out_h, out_w}, c10::nullopt, c10::nullopt)
            : at::upsample_bilinear2d(X, {out_h, out_w}, align_corners, c10::nullopt,
                                      c10::nullopt);
    }));
}

dhf_status dhf_cross_entropy(dhf_tensor logits, dhf_tensor target, dhf_tensor *out)
{
    return MAKE(out, at::nll_loss(at::log_softmax(T(logits, "logits"), 1), T(target, "target")));
}

dhf_status dhf_embedding(dhf_tensor weight, dhf_tensor ids, dhf_tensor *out)
{
    return MAKE(out, at::embedding(T(weight, "weight"), T(ids, "ids")));
}

dhf_status dhf_causal_mask_(dhf_tensor scores)
{
    return GUARD({
        auto &s = const_cast<at::Tensor &>(T(scores));
        int64_t n = s.size(-1);
        auto mask = at::ones({s.size(-2), n}, at::TensorOptions().dtype(at::kBool).device(s.device()))
                        .triu(1);
        s.masked_fill_(mask, -std::numeric_limits<double>::infinity());
    });
}

// ---- autograd ---------------------------------------------------------------------------
dhf_status dhf_set_requires_grad(dhf_tensor t, bool rg)
{
    return GUARD(const_cast<at::Tensor &>(T(t)).requires_grad_(rg));
}

bool dhf_requires_grad(dhf_tensor t) { return t && t->t.requires_grad(); }

dhf_status dhf_backward(dhf_tensor loss) { return GUARD(T(loss, "loss").backward()); }

dhf_status dhf_grad(dhf_tensor t, dhf_tensor *out)
{
    if (!out)
        return fail(DHF_ERR_ARG, "dhf_grad: out is NULL");
    return GUARD({
        const at::Tensor &g = T(t).grad();
        *out = g.defined() ? wrap(g) : nullptr;
    });
}

dhf_status dhf_zero_grad(dhf_tensor t)
{
    return GUARD({
        auto &g = const_cast<at::Tensor &>(T(t)).mutable_grad();
        if (g.defined()) {
            g = g.detach();
            g.zero_();
        }
    });
}

dhf_status dhf_grad_buffer(dhf_tensor t, dhf_tensor *out)
{
    if (!out)
        return fail(DHF_ERR_ARG, "dhf_grad_buffer: out is NULL");
    return GUARD({
        auto &g = const_cast<at::Tensor &>(T(t)).mutable_grad();
        if (!g.defined())
            g = at::zeros_like(T(t), at::MemoryFormat::Contiguous);
        *out = wrap(g);
    });
}

dhf_status dhf_clear_grad(dhf_tensor t)
{
    return GUARD(const_cast<at::Tensor &>(T(t)).mutable_grad() = at::Tensor());
}

dhf_status dhf_set_grad_enabled(bool enabled, bool *prev)
{
    return GUARD({
        if (prev)
            *prev = c10::GradMode::is_enabled();
        c10::GradMode::set_enabled(enabled);
    });
}

bool dhf_is_grad_enabled(void) { return c10::GradMode::is_enabled(); }

dhf_status dhf_inference_begin(void)
{
    return GUARD(g_inference.push_back(std::make_unique<c10::InferenceMode>(true)));
}

dhf_status dhf_inference_end(void)
{
    if (g_inference.empty())
        return fail(DHF_ERR_STATE, "dhf_inference_end: no inference region is open");
    return GUARD(g_inference.pop_back());
}

// ---- AdamW --------------------------------------------------------------------------------
dhf_adamw_hparams dhf_adamw_defaults(void) { return {1e-3, 0.9, 0.999, 1e-8, 1e-2}; }

dhf_status dhf_adamw_step(dhf_tensor *params, dhf_tensor *exp_avg, dhf_tensor *exp_avg_sq,
                          int n, int64_t step, const dhf_adamw_hparams *hp)
{
    if (!params || !exp_avg || !exp_avg_sq || !hp || n < 0)
        return fail(DHF_ERR_ARG, "dhf_adamw_step: NULL argument");
    if (step < 1)
        return fail(DHF_ERR_ARG, "dhf_adamw_step: step must be >= 1 (1-based)");
    return GUARD({
        at::NoGradGuard ng;
        // Same arithmetic, same order as torch.optim.adamw._single_tensor_adamw.
        const double bias_correction1 = 1.0 - std::pow(hp->beta1, (double)step);
        const double bias_correction2 = 1.0 - std::pow(hp->beta2, (double)step);
        const double step_size = hp->lr / bias_correction1;
        const double bias_correction2_sqrt = std::sqrt(bias_correction2);
        for (int i = 0; i < n; i++) {
            auto &p = const_cast<at::Tensor &>(T(params[i], "param"));
            const at::Tensor &g = p.grad();
            if (!g.defined())
                continue;
            auto &m = const_cast<at::Tensor &>(T(exp_avg[i], "exp_avg"));
            auto &v = const_cast<at::Tensor &>(T(exp_avg_sq[i], "exp_avg_sq"));
            p.mul_(1.0 - hp->lr * hp->weight_decay);
            m.mul_(hp->beta1).add_(g, 1.0 - hp->beta1);
            v.mul_(hp->beta2).addcmul_(g, g, 1.0 - hp->beta2);
            auto denom = (v.sqrt() / bias_correction2_sqrt).add_(hp->eps);
            p.addcdiv_(m, denom, -step_size);
        }
    });
}

// ---- PyTorch .pt archives (torch.save's zip container) --------------------
struct dhf_pt_archive_s {
    std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
};

dhf_status dhf_pt_open(const char *path, dhf_pt_archive **out)
{
    if (!path || !out)
        return fail(DHF_ERR_ARG, "dhf_pt_open: NULL argument");
    *out = nullptr;
    return GUARD({
        auto a = std::make_unique<dhf_pt_archive_s>();
        a->reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(std::string(path));
        *out = a.release();
    });
}

dhf_status dhf_pt_read(dhf_pt_archive *a, const char *name, void **data, size_t *size)
{
    if (!a || !name || !data || !size)
        return fail(DHF_ERR_ARG, "dhf_pt_read: NULL argument");
    *data = nullptr;
    *size = 0;
    return GUARD({
        if (!a->reader->hasRecord(name))
            throw std::invalid_argument(std::string("no record '") + name + "' in the archive");
        auto rec = a->reader->getRecord(name);
        const size_t n = std::get<1>(rec);
        void *buf = std::malloc(n ? n : 1);
        if (!buf)
            throw std::bad_alloc();
        if (n)
            std::memcpy(buf, std::get<0>(rec).get(), n);
        *data = buf;
        *size = n;
    });
}

void dhf_pt_close(dhf_pt_archive *a) { delete a; }

dhf_status dhf_pt_write(const char *path, const char *const *names, const void *const *data,
                        const size_t *sizes, int n)
{
    if (!path || (n > 0 && (!names || !data || !sizes)) || n < 0)
        return fail(DHF_ERR_ARG, "dhf_pt_write: NULL argument");
    FILE *f = std::fopen(path, "wb");
    if (!f)
        return fail(DHF_ERR_ARG, std::string("dhf_pt_write: cannot create ") + path + ": " +
                                     std::strerror(errno));
    bool io_error = false;
    dhf_status st = GUARD({
        // the writer-function form names the archive's top folder "archive", as
        // torch.save does for a file object
        caffe2::serialize::PyTorchStreamWriter w([&](const void *buf, size_t len) -> size_t {
            if (len && std::fwrite(buf, 1, len, f) != len)
                io_error = true;
            return len;
        });
        for (int i = 0; i < n; i++)
            w.writeRecord(names[i], data[i], sizes[i]);
        w.writeEndOfFile();
    });
    if (std::fflush(f) != 0 || fsync(fileno(f)) != 0)
        io_error = true;
    std::fclose(f);
    if (st == DHF_OK && io_error)
        return fail(DHF_ERR_ARG, std::string("dhf_pt_write: writing ") + path + ": " +
                                     std::strerror(errno));
    return st;
}

} // extern "C"
