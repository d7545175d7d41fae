// oneDNN convolutions as XLA FFI targets: forward, backward-data, backward-weights, and
// the tutorial network's fused conv -> bias -> ReLU -> 2x2 max-pool block (below).
//
// Activations are NHWC, weights HWIO (JAX's layout for nn.Conv), stride 1, VALID.
// float32 or bfloat16 inputs; the forward result and the weight gradient are float32
// (bf16 products accumulate in float32), the input gradient has the input's type.
// Primitives are built once per (op, type, shape) and kept; executing a oneDNN
// primitive from several threads at once is allowed, so XLA may run independent calls
// concurrently. Weights are reordered per call between HWIO and the blocked layout the
// primitive chose (a few kB), which keeps the cached state read-only.
#include <algorithm>
#include <array>
#include <cstring>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <immintrin.h>
#include <omp.h>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

using Dims = ffi::AnyBuffer::Dimensions;

enum Op : int64_t { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

// op, input type, N, H, W, C, KH, KW, O, threads
using Key = std::array<int64_t, 10>;

// Threads per call: the machine's cores, or fewer when several XLA CPU devices run
// their steps side by side (set from Python once, before the first call).
int g_threads = 0;  // 0: OpenMP's default
// Threads per call below a batch size. A primitive run by a whole OpenMP team (Run,
// the unfused convolutions) synchronises inside every call: measured at batch 32 on 2
// cores, a 2-thread team made the whole step 19-21 ms instead of 13, so batches under
// 64 run it on one thread. The fused blocks give each thread whole chunks of the batch,
// the same chunks one thread would run, and meet once per call: at batch 32 the step
// costs the same CPU time on two threads as on one (98 vs 97 ms on a loaded 2-core
// Zen 1), so from batch 16 (kSmallBatchChunked) they take the whole team.
constexpr int64_t kSmallBatchTeam = 64;
constexpr int64_t kSmallBatchChunked = 16;
int64_t g_small_batch = kSmallBatchChunked;  // settable for measurements

struct Entry {
  dnnl::primitive prim;
  memory::desc scratchpad;  // per call: a primitive may run on several threads at once
  memory::desc prim_weights;  // weights / weight-gradient layout the primitive uses
  memory::desc user_weights;  // HWIO
  bool reorder_weights = false;
  dnnl::reorder weights_reorder;
  memory::desc reorder_scratchpad;  // user -> prim (fwd, bwd data) or prim -> user (bwd w)
};

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

std::mutex& CacheMutex() {
  static std::mutex mu;
  return mu;
}

std::map<Key, std::shared_ptr<Entry>>& Cache() {
  static std::map<Key, std::shared_ptr<Entry>> cache;
  return cache;
}

std::shared_ptr<Entry> Build(const Key& k) {
  const Op op = static_cast<Op>(k[0]);
  const dt in = static_cast<dt>(k[1]);
  const int64_t n = k[2], h = k[3], w = k[4], c = k[5], kh = k[6], kw = k[7], o = k[8];
  const int64_t ho = h - kh + 1, wo = w - kw + 1;
  const memory::dims src_dims = {n, c, h, w}, dst_dims = {n, o, ho, wo},
                     wei_dims = {o, c, kh, kw}, strides = {1, 1}, pad = {0, 0};
  auto& eng = Engine();
  const auto alg = dnnl::algorithm::convolution_direct;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  memory::desc src(src_dims, in, tag::nhwc);
  memory::desc wei_any(wei_dims, in, tag::any);
  // The backward primitives need a forward descriptor of the same problem as a hint.
  dnnl::convolution_forward::primitive_desc hint(
      eng, dnnl::prop_kind::forward_training, alg, src, wei_any,
      memory::desc(dst_dims, op == kForward ? dt::f32 : in, tag::nhwc), strides, pad, pad,
      attr);

  auto e = std::make_shared<Entry>();
  if (op == kForward) {
    e->prim = dnnl::convolution_forward(hint);
    e->scratchpad = hint.scratchpad_desc();
    e->prim_weights = hint.weights_desc();
    e->user_weights = memory::desc(wei_dims, in, tag::hwio);
  } else if (op == kBackwardData) {
    dnnl::convolution_backward_data::primitive_desc pd(
        eng, alg, memory::desc(src_dims, in, tag::nhwc), wei_any,
        memory::desc(dst_dims, in, tag::nhwc), strides, pad, pad, hint, attr);
    e->prim = dnnl::convolution_backward_data(pd);
    e->scratchpad = pd.scratchpad_desc();
    e->prim_weights = pd.weights_desc();
    e->user_weights = memory::desc(wei_dims, in, tag::hwio);
  } else {
    dnnl::convolution_backward_weights::primitive_desc pd(
        eng, alg, src, memory::desc(wei_dims, dt::f32, tag::any),
        memory::desc(dst_dims, in, tag::nhwc), strides, pad, pad, hint, attr);
    e->prim = dnnl::convolution_backward_weights(pd);
    e->scratchpad = pd.scratchpad_desc();
    e->prim_weights = pd.diff_weights_desc();
    e->user_weights = memory::desc(wei_dims, dt::f32, tag::hwio);
  }
  e->reorder_weights = e->prim_weights != e->user_weights;
  if (e->reorder_weights) {
    auto pd = op == kBackwardWeights
                  ? dnnl::reorder::primitive_desc(eng, e->prim_weights, eng, e->user_weights,
                                                  attr)
                  : dnnl::reorder::primitive_desc(eng, e->user_weights, eng, e->prim_weights,
                                                  attr);
    e->weights_reorder = dnnl::reorder(pd);
    e->reorder_scratchpad = pd.scratchpad_desc();
  }
  return e;
}

std::shared_ptr<Entry> Get(const Key& k) {
  {
    std::lock_guard<std::mutex> lock(CacheMutex());
    auto it = Cache().find(k);
    if (it != Cache().end()) return it->second;
  }
  auto e = Build(k);  // outside the lock: primitive creation can take milliseconds
  std::lock_guard<std::mutex> lock(CacheMutex());
  return Cache().emplace(k, e).first->second;
}

ffi::Error InputType(ffi::DataType t, dt* out) {
  if (t == ffi::DataType::F32) {
    *out = dt::f32;
  } else if (t == ffi::DataType::BF16) {
    *out = dt::bf16;
  } else {
    return ffi::Error::InvalidArgument("charjax oneDNN conv: float32 or bfloat16 inputs only");
  }
  return ffi::Error::Success();
}

// The unfused convolutions (oneDNN's convolution alone; XLA pools): built only for
// benchmarks/fused_blocks.py, which measures the fused blocks against them.
#ifdef CHARJAX_UNFUSED_TARGETS
// Runs op on NHWC activations `act` ([N,H,W,C] input, or [N,Ho,Wo,O] gradient) and
// the HWIO weights; `nhwc` / `hwio` give the problem's shapes.
ffi::Error Run(Op op, ffi::DataType type, Dims nhwc, Dims hwio,
               void* src, void* weights, void* dst) {
  if (nhwc.size() != 4 || hwio.size() != 4 || hwio[2] != nhwc[3]) {
    return ffi::Error::InvalidArgument("charjax oneDNN conv: expected NHWC x HWIO");
  }
  dt in;
  if (auto err = InputType(type, &in); err.failure()) return err;
  // The calling thread's OpenMP team size, for both building and running the primitive
  // (oneDNN partitions the work by it); one thread for small batches (kSmallBatchTeam).
  if (g_threads > 0) omp_set_num_threads(nhwc[0] < kSmallBatchTeam ? 1 : g_threads);
  const Key key = {op,      static_cast<int64_t>(in), nhwc[0], nhwc[1], nhwc[2],
                   nhwc[3], hwio[0],                  hwio[1], hwio[3], omp_get_max_threads()};
  try {
    auto e = Get(key);
    auto& eng = Engine();
    thread_local dnnl::stream stream(eng);
    const int64_t n = nhwc[0], h = nhwc[1], w = nhwc[2], c = nhwc[3];
    const int64_t kh = hwio[0], kw = hwio[1], o = hwio[3];
    memory::desc src_md({n, c, h, w}, in, tag::nhwc);
    memory::desc dst_md({n, o, h - kh + 1, w - kw + 1}, op == kForward ? dt::f32 : in,
                        tag::nhwc);
    memory scratch(e->scratchpad, eng), reorder_scratch(e->reorder_scratchpad, eng);
    memory user_w(e->user_weights, eng, weights);
    memory prim_w = e->reorder_weights ? memory(e->prim_weights, eng) : user_w;
    if (op == kForward) {
      if (e->reorder_weights) e->weights_reorder.execute(stream, {{DNNL_ARG_FROM, user_w}, {DNNL_ARG_TO, prim_w},
                                           {DNNL_ARG_SCRATCHPAD, reorder_scratch}});
      memory x(src_md, eng, src), z(dst_md, eng, dst);
      e->prim.execute(stream, {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, prim_w},
                               {DNNL_ARG_DST, z}, {DNNL_ARG_SCRATCHPAD, scratch}});
    } else if (op == kBackwardData) {
      if (e->reorder_weights) e->weights_reorder.execute(stream, {{DNNL_ARG_FROM, user_w}, {DNNL_ARG_TO, prim_w},
                                           {DNNL_ARG_SCRATCHPAD, reorder_scratch}});
      memory dx(src_md, eng, src), gz(dst_md, eng, dst);
      e->prim.execute(stream, {{DNNL_ARG_DIFF_DST, gz}, {DNNL_ARG_WEIGHTS, prim_w},
                               {DNNL_ARG_DIFF_SRC, dx}, {DNNL_ARG_SCRATCHPAD, scratch}});
    } else {
      memory x(src_md, eng, src), gz(dst_md, eng, dst);
      e->prim.execute(stream, {{DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_DST, gz},
                               {DNNL_ARG_DIFF_WEIGHTS, prim_w},
                               {DNNL_ARG_SCRATCHPAD, scratch}});
      if (e->reorder_weights) e->weights_reorder.execute(stream, {{DNNL_ARG_FROM, prim_w}, {DNNL_ARG_TO, user_w},
                                           {DNNL_ARG_SCRATCHPAD, reorder_scratch}});
    }
    stream.wait();
  } catch (const dnnl::error& err) {
    return ffi::Error::Internal(std::string("charjax oneDNN conv: ") + err.what());
  }
  return ffi::Error::Success();
}

// z[N,Ho,Wo,O] (float32) = conv(x[N,H,W,C], k[KH,KW,C,O])
ffi::Error Forward(ffi::AnyBuffer x, ffi::AnyBuffer k, ffi::Result<ffi::AnyBuffer> z) {
  if (z->element_type() != ffi::DataType::F32) {
    return ffi::Error::InvalidArgument("charjax oneDNN conv: forward result must be float32");
  }
  return Run(kForward, x.element_type(), x.dimensions(), k.dimensions(), x.untyped_data(),
             k.untyped_data(), z->untyped_data());
}

// dx[N,H,W,C] (input type) from gz[N,Ho,Wo,O] and k[KH,KW,C,O]
ffi::Error BackwardData(ffi::AnyBuffer gz, ffi::AnyBuffer k, ffi::Result<ffi::AnyBuffer> dx) {
  if (gz.element_type() != k.element_type() || dx->element_type() != k.element_type()) {
    return ffi::Error::InvalidArgument("charjax oneDNN conv: mixed types in backward data");
  }
  return Run(kBackwardData, k.element_type(), dx->dimensions(), k.dimensions(),
             dx->untyped_data(), k.untyped_data(), gz.untyped_data());
}

// dk[KH,KW,C,O] (float32) from x[N,H,W,C] and gz[N,Ho,Wo,O]
ffi::Error BackwardWeights(ffi::AnyBuffer x, ffi::AnyBuffer gz, ffi::Result<ffi::AnyBuffer> dk) {
  if (gz.element_type() != x.element_type() || dk->element_type() != ffi::DataType::F32) {
    return ffi::Error::InvalidArgument("charjax oneDNN conv: bad types in backward weights");
  }
  return Run(kBackwardWeights, x.element_type(), x.dimensions(), dk->dimensions(),
             x.untyped_data(), dk->untyped_data(), gz.untyped_data());
}

#endif  // CHARJAX_UNFUSED_TARGETS

// ---- Fused conv blocks: relu(maxpool2x2(conv(x, k)) + bias) and its gradient ----
//
// The convolution runs on batch chunks whose float32 result fits in L2, and each chunk
// is pooled right away, so the full-size pre-pool activation never reaches memory. The
// forward pass also writes, per pooled element, the window position (0..3, row-major)
// of the first maximum, or 4 where the ReLU clipped it; the backward pass scatters the
// incoming gradient through that index into a chunk of the conv-output gradient, sums
// the bias gradient, and runs oneDNN's backward-data / backward-weights on the chunk,
// summing the weight gradients of the chunks in order (deterministic for a fixed
// thread count).

constexpr int64_t kChunkBytes = 1 << 20;  // float32 conv output per chunk
int64_t g_chunk_bytes = kChunkBytes;
int64_t g_chunk_bytes_bwd = kChunkBytes;

inline float Bf16ToF32(uint16_t v) {
  uint32_t u = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t F32ToBf16(float f) {  // round to nearest even, as XLA's convert
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

template <typename T> inline float ToF32(T v);
template <> inline float ToF32<float>(float v) { return v; }
template <> inline float ToF32<uint16_t>(uint16_t v) { return Bf16ToF32(v); }
template <typename T> inline T FromF32(float v);
template <> inline float FromF32<float>(float v) { return v; }
template <> inline uint16_t FromF32<uint16_t>(float v) { return F32ToBf16(v); }

struct Problem {
  int64_t n, h, w, c, kh, kw, o, ho, wo, hp, wp;
  dt in;
  int threads;     // the team: each thread takes every threads-th chunk
  int64_t chunks;  // chunks in the batch
  int64_t q, r;    // chunk ci holds q + (ci < r) images
  int64_t chunk;   // the largest chunk
  int64_t Size(int64_t ci) const { return q + (ci < r); }
  int64_t Start(int64_t ci) const { return ci * q + std::min(ci, r); }
};

ffi::Error MakeProblem(ffi::DataType type, Dims nhwc, Dims hwio, Problem* p,
                       int64_t chunk_bytes) {
  if (nhwc.size() != 4 || hwio.size() != 4 || hwio[2] != nhwc[3]) {
    return ffi::Error::InvalidArgument("charjax oneDNN block: expected NHWC x HWIO");
  }
  if (auto err = InputType(type, &p->in); err.failure()) return err;
  p->n = nhwc[0]; p->h = nhwc[1]; p->w = nhwc[2]; p->c = nhwc[3];
  p->kh = hwio[0]; p->kw = hwio[1]; p->o = hwio[3];
  p->ho = p->h - p->kh + 1; p->wo = p->w - p->kw + 1;
  p->hp = p->ho / 2; p->wp = p->wo / 2;
  p->threads = g_threads > 0 ? (p->n < g_small_batch ? 1 : g_threads) : omp_get_max_threads();
  const int64_t per_image = p->ho * p->wo * p->o * 4;
  const int64_t want = std::max<int64_t>(1, std::min<int64_t>(p->n, chunk_bytes / per_image));
  // a whole number of chunks per thread, as even as the batch allows
  int64_t chunks = (p->n + want - 1) / want;
  chunks = std::min<int64_t>(p->n, (chunks + p->threads - 1) / p->threads * p->threads);
  p->chunks = chunks;  // sizes q + 1 (the first r chunks) and q: each thread's share even
  p->q = p->n / chunks;
  p->r = p->n % chunks;
  p->chunk = p->q + (p->r > 0);
  return ffi::Error::Success();
}

// One single-threaded oneDNN primitive for a chunk of `nc` images and (for the forward
// and backward-data ops) the weights in its layout. Each thread of the team runs it on
// its own chunks with its own scratchpad: one parallel region per call, no barrier per
// chunk (a team synchronising per chunk spun most of its time on a loaded machine).
struct Prepared {
  std::shared_ptr<Entry> e;
  memory prim_w;
};

Prepared Prepare(Op op, const Problem& p, int64_t nc, void* user_weights) {
  const Key key = {op, static_cast<int64_t>(p.in), nc, p.h, p.w, p.c, p.kh, p.kw, p.o, 1};
  Prepared r;
  omp_set_num_threads(1);  // oneDNN sizes the primitive by the caller's team
  r.e = Get(key);
  auto& eng = Engine();
  if (op != kBackwardWeights && r.e->reorder_weights) {
    thread_local dnnl::stream stream(eng);
    memory user_w(r.e->user_weights, eng, user_weights);
    r.prim_w = memory(r.e->prim_weights, eng);
    memory rs(r.e->reorder_scratchpad, eng);
    r.e->weights_reorder.execute(stream, {{DNNL_ARG_FROM, user_w}, {DNNL_ARG_TO, r.prim_w},
                                          {DNNL_ARG_SCRATCHPAD, rs}});
    stream.wait();
  } else if (op != kBackwardWeights) {
    r.prim_w = memory(r.e->user_weights, eng, user_weights);
  }
  return r;
}

float* Scratch(int64_t floats) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < floats) buf.resize(floats);
  return buf.data();
}

// The pooling and unpooling loops run over channels, 16 at a time with AVX-512 where the
// CPU has it (g++ does not vectorise the first-maximum selects itself, and the branchy
// scalar loop mispredicts on real data: 10x slower), else one at a time.
bool HasAvx512() {
  static const bool yes = __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl");
  return yes;
}

template <typename T>
void PoolPixelScalar(int64_t o, const float* a, const float* b, const float* c,
                     const float* d, const float* bias, T* y, int8_t* f) {
  for (int64_t k = 0; k < o; ++k) {
    const float m = std::max(std::max(a[k], b[k]), std::max(c[k], d[k]));
    const int8_t first = a[k] == m ? 0 : (b[k] == m ? 1 : (c[k] == m ? 2 : 3));
    const float v = m + bias[k];
    y[k] = FromF32<T>(v > 0.f || v != v ? v : 0.f);
    f[k] = v > 0.f ? first : 4;
  }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m256i Bf16x16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
  return _mm512_cvtepi32_epi16(r);
}

template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void PoolPixel16(
    int64_t o, const float* a, const float* b, const float* c, const float* d,
    const float* bias, T* y, int8_t* f) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t k = 0; k < o; k += 16) {
    const __m512 va = _mm512_loadu_ps(a + k), vb = _mm512_loadu_ps(b + k),
                 vc = _mm512_loadu_ps(c + k), vd = _mm512_loadu_ps(d + k);
    const __m512 m = _mm512_max_ps(_mm512_max_ps(va, vb), _mm512_max_ps(vc, vd));
    __m512i first = _mm512_set1_epi32(3);
    first = _mm512_mask_mov_epi32(first, _mm512_cmp_ps_mask(vc, m, _CMP_EQ_OQ),
                                  _mm512_set1_epi32(2));
    first = _mm512_mask_mov_epi32(first, _mm512_cmp_ps_mask(vb, m, _CMP_EQ_OQ),
                                  _mm512_set1_epi32(1));
    first = _mm512_mask_mov_epi32(first, _mm512_cmp_ps_mask(va, m, _CMP_EQ_OQ),
                                  _mm512_setzero_si512());
    const __m512 v = _mm512_add_ps(m, _mm512_loadu_ps(bias + k));
    const __mmask16 on = _mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ);
    first = _mm512_mask_mov_epi32(_mm512_set1_epi32(4), on, first);
    const __m512 out = _mm512_max_ps(zero, v);  // relu; a NaN stays NaN
    if constexpr (sizeof(T) == 4) {
      _mm512_storeu_ps(reinterpret_cast<float*>(y + k), out);
    } else {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + k), Bf16x16(out));
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(f + k), _mm512_cvtepi32_epi8(first));
  }
}

template <typename T>
void PoolChunk(const Problem& p, int64_t nc, const float* z, const float* bias, T* out,
               int8_t* idx) {
  const int64_t o = p.o, rows = nc * p.hp;
  const bool wide = HasAvx512() && o % 16 == 0;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = r / p.hp, py = r % p.hp;
    for (int64_t px = 0; px < p.wp; ++px) {
      const float* a = z + ((i * p.ho + 2 * py) * p.wo + 2 * px) * o;
      const float* c = a + p.wo * o;
      T* y = out + ((i * p.hp + py) * p.wp + px) * o;
      int8_t* f = idx + ((i * p.hp + py) * p.wp + px) * o;
      if (wide) {
        PoolPixel16<T>(o, a, a + o, c, c + o, bias, y, f);
      } else {
        PoolPixelScalar<T>(o, a, a + o, c, c + o, bias, y, f);
      }
    }
  }
}

template <typename T>
void UnpoolPixelScalar(int64_t o, const T* g, const int8_t* f, T* a, T* b, T* c, T* d,
                       float* db) {
  T* corner[4] = {a, b, c, d};
  for (int64_t k = 0; k < o; ++k) {
    a[k] = b[k] = c[k] = d[k] = T(0);
    if (f[k] < 4) {
      corner[f[k]][k] = g[k];
      db[k] += ToF32<T>(g[k]);
    }
  }
}

template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void UnpoolPixel16(
    int64_t o, const T* g, const int8_t* f, T* a, T* b, T* c, T* d, float* db) {
  for (int64_t k = 0; k < o; k += 16) {
    const __m512i fi = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(f + k)));
    const __mmask16 m0 = _mm512_cmpeq_epi32_mask(fi, _mm512_setzero_si512()),
                    m1 = _mm512_cmpeq_epi32_mask(fi, _mm512_set1_epi32(1)),
                    m2 = _mm512_cmpeq_epi32_mask(fi, _mm512_set1_epi32(2)),
                    m3 = _mm512_cmpeq_epi32_mask(fi, _mm512_set1_epi32(3));
    __m512 gf;
    if constexpr (sizeof(T) == 4) {
      gf = _mm512_loadu_ps(reinterpret_cast<const float*>(g + k));
      _mm512_storeu_ps(reinterpret_cast<float*>(a + k), _mm512_maskz_mov_ps(m0, gf));
      _mm512_storeu_ps(reinterpret_cast<float*>(b + k), _mm512_maskz_mov_ps(m1, gf));
      _mm512_storeu_ps(reinterpret_cast<float*>(c + k), _mm512_maskz_mov_ps(m2, gf));
      _mm512_storeu_ps(reinterpret_cast<float*>(d + k), _mm512_maskz_mov_ps(m3, gf));
    } else {
      const __m256i g16 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + k));
      gf = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(g16), 16));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(a + k), _mm256_maskz_mov_epi16(m0, g16));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(b + k), _mm256_maskz_mov_epi16(m1, g16));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + k), _mm256_maskz_mov_epi16(m2, g16));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + k), _mm256_maskz_mov_epi16(m3, g16));
    }
    const __mmask16 any = m0 | m1 | m2 | m3;
    _mm512_storeu_ps(db + k, _mm512_add_ps(_mm512_loadu_ps(db + k), _mm512_maskz_mov_ps(any, gf)));
  }
}

template <typename T>
void UnpoolChunk(const Problem& p, int64_t nc, const T* g, const int8_t* idx, T* gz,
                 float* db_rows) {
  const int64_t o = p.o, rows = nc * p.hp;
  const bool wide = HasAvx512() && o % 16 == 0;
  if (p.ho % 2 || p.wo % 2) std::memset(gz, 0, sizeof(T) * nc * p.ho * p.wo * o);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = r / p.hp, py = r % p.hp;
    float* db = db_rows + r * o;
    for (int64_t k = 0; k < o; ++k) db[k] = 0.f;
    for (int64_t px = 0; px < p.wp; ++px) {
      const int64_t pos = ((i * p.hp + py) * p.wp + px) * o;
      T* a = gz + ((i * p.ho + 2 * py) * p.wo + 2 * px) * o;
      T* c = a + p.wo * o;
      if (wide) {
        UnpoolPixel16<T>(o, g + pos, idx + pos, a, a + o, c, c + o, db);
      } else {
        UnpoolPixelScalar<T>(o, g + pos, idx + pos, a, a + o, c, c + o, db);
      }
    }
  }
}

template <typename T>
ffi::Error BlockForwardT(const Problem& p, const T* x, void* kernel, const float* bias,
                         T* out, int8_t* idx) {
  Prepared full = Prepare(kForward, p, p.chunk, kernel);
  Prepared rest = p.q != p.chunk ? Prepare(kForward, p, p.q, kernel) : full;
  bool failed = false;
#pragma omp parallel num_threads(p.threads)
  {
    try {
      auto& eng = Engine();
      thread_local dnnl::stream stream(eng);
      float* z = Scratch(p.chunk * p.ho * p.wo * p.o);
      memory s_full(full.e->scratchpad, eng), s_rest(rest.e->scratchpad, eng);
      for (int64_t ci = omp_get_thread_num(); ci < p.chunks; ci += omp_get_num_threads()) {
        const int64_t i0 = p.Start(ci), nc = p.Size(ci);
        Prepared& pr = nc == p.chunk ? full : rest;
        memory xm(memory::desc({nc, p.c, p.h, p.w}, p.in, tag::nhwc), eng,
                  const_cast<T*>(x + i0 * p.h * p.w * p.c));
        memory zm(memory::desc({nc, p.o, p.ho, p.wo}, dt::f32, tag::nhwc), eng, z);
        pr.e->prim.execute(stream, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, pr.prim_w},
                                    {DNNL_ARG_DST, zm},
                                    {DNNL_ARG_SCRATCHPAD, nc == p.chunk ? s_full : s_rest}});
        stream.wait();
        const int64_t off = i0 * p.hp * p.wp * p.o;
        PoolChunk<T>(p, nc, z, bias, out + off, idx + off);
      }
    } catch (const dnnl::error&) {
#pragma omp atomic write
      failed = true;
    }
  }
  if (failed) return ffi::Error::Internal("charjax oneDNN block: forward failed");
  return ffi::Error::Success();
}

template <typename T>
ffi::Error BlockBackwardT(const Problem& p, const T* x, void* kernel, const int8_t* idx,
                          const T* g, T* dx, float* dk, float* db) {
  Prepared wfull = Prepare(kBackwardWeights, p, p.chunk, nullptr);
  Prepared wrest = p.q != p.chunk ? Prepare(kBackwardWeights, p, p.q, nullptr) : wfull;
  Prepared dfull, drest;
  if (dx) {
    dfull = Prepare(kBackwardData, p, p.chunk, kernel);
    drest = p.q != p.chunk ? Prepare(kBackwardData, p, p.q, kernel) : dfull;
  }
  const int64_t wn = p.kh * p.kw * p.c * p.o;
  // per-thread sums, added in thread order afterwards: deterministic for a fixed team
  std::vector<float> dk_parts(p.threads * wn, 0.f), db_parts(p.threads * p.o, 0.f);
  bool failed = false;
#pragma omp parallel num_threads(p.threads)
  {
    try {
      const int t = omp_get_thread_num();
      auto& eng = Engine();
      thread_local dnnl::stream stream(eng);
      const int64_t gz_elems = p.chunk * p.ho * p.wo * p.o;
      const int64_t gz_floats = (gz_elems * static_cast<int64_t>(sizeof(T)) + 63) / 64 * 16;
      float* buf = Scratch(gz_floats + p.chunk * p.hp * p.o + wn);
      T* gz = reinterpret_cast<T*>(buf);
      float* db_rows = buf + gz_floats;
      float* part_user = db_rows + p.chunk * p.hp * p.o;
      float* dk_t = dk_parts.data() + t * wn;
      float* db_t = db_parts.data() + t * p.o;
      memory ws_full(wfull.e->scratchpad, eng), ws_rest(wrest.e->scratchpad, eng);
      memory dw_full(wfull.e->prim_weights, eng), dw_rest(wrest.e->prim_weights, eng);
      memory ds_full, ds_rest;
      if (dx) {
        ds_full = memory(dfull.e->scratchpad, eng);
        ds_rest = memory(drest.e->scratchpad, eng);
      }
      for (int64_t ci = t; ci < p.chunks; ci += omp_get_num_threads()) {
        const int64_t i0 = p.Start(ci), nc = p.Size(ci);
        const bool is_full = nc == p.chunk;
        const int64_t off = i0 * p.hp * p.wp * p.o;
        UnpoolChunk<T>(p, nc, g + off, idx + off, gz, db_rows);
        for (int64_t r = 0; r < nc * p.hp; ++r)
          for (int64_t k = 0; k < p.o; ++k) db_t[k] += db_rows[r * p.o + k];
        memory gzm(memory::desc({nc, p.o, p.ho, p.wo}, p.in, tag::nhwc), eng, gz);
        memory xm(memory::desc({nc, p.c, p.h, p.w}, p.in, tag::nhwc), eng,
                  const_cast<T*>(x + i0 * p.h * p.w * p.c));
        if (dx) {
          Prepared& d = is_full ? dfull : drest;
          memory dxm(memory::desc({nc, p.c, p.h, p.w}, p.in, tag::nhwc), eng,
                     dx + i0 * p.h * p.w * p.c);
          d.e->prim.execute(stream, {{DNNL_ARG_DIFF_DST, gzm}, {DNNL_ARG_WEIGHTS, d.prim_w},
                                     {DNNL_ARG_DIFF_SRC, dxm},
                                     {DNNL_ARG_SCRATCHPAD, is_full ? ds_full : ds_rest}});
        }
        Prepared& w = is_full ? wfull : wrest;
        memory& dw = is_full ? dw_full : dw_rest;
        w.e->prim.execute(stream, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_DST, gzm},
                                   {DNNL_ARG_DIFF_WEIGHTS, dw},
                                   {DNNL_ARG_SCRATCHPAD, is_full ? ws_full : ws_rest}});
        const float* part = static_cast<const float*>(dw.get_data_handle());
        if (w.e->reorder_weights) {  // chunk sizes may differ in layout: sum in HWIO
          memory user(w.e->user_weights, eng, part_user);
          memory rs(w.e->reorder_scratchpad, eng);
          w.e->weights_reorder.execute(stream, {{DNNL_ARG_FROM, dw}, {DNNL_ARG_TO, user},
                                                {DNNL_ARG_SCRATCHPAD, rs}});
          part = part_user;
        }
        stream.wait();
        for (int64_t j = 0; j < wn; ++j) dk_t[j] += part[j];
      }
    } catch (const dnnl::error&) {
#pragma omp atomic write
      failed = true;
    }
  }
  if (failed) return ffi::Error::Internal("charjax oneDNN block: backward failed");
  for (int64_t j = 0; j < wn; ++j) dk[j] = 0.f;
  for (int64_t k = 0; k < p.o; ++k) db[k] = 0.f;
  for (int t = 0; t < p.threads; ++t) {
    for (int64_t j = 0; j < wn; ++j) dk[j] += dk_parts[t * wn + j];
    for (int64_t k = 0; k < p.o; ++k) db[k] += db_parts[t * p.o + k];
  }
  return ffi::Error::Success();
}

ffi::Error BiasToF32(ffi::AnyBuffer bias, int64_t o, std::vector<float>* out) {
  if (bias.element_count() != static_cast<size_t>(o)) {
    return ffi::Error::InvalidArgument("charjax oneDNN block: bias size != output channels");
  }
  out->resize(o);
  if (bias.element_type() == ffi::DataType::F32) {
    std::memcpy(out->data(), bias.untyped_data(), o * 4);
  } else if (bias.element_type() == ffi::DataType::BF16) {
    const uint16_t* b = static_cast<const uint16_t*>(bias.untyped_data());
    for (int64_t k = 0; k < o; ++k) (*out)[k] = Bf16ToF32(b[k]);
  } else {
    return ffi::Error::InvalidArgument("charjax oneDNN block: float32 or bfloat16 bias");
  }
  return ffi::Error::Success();
}

// out[N,Hp,Wp,O] (input type), idx[N,Hp,Wp,O] (int8) from x[N,H,W,C], k[KH,KW,C,O], bias[O]
ffi::Error BlockForward(ffi::AnyBuffer x, ffi::AnyBuffer k, ffi::AnyBuffer bias,
                        ffi::Result<ffi::AnyBuffer> out, ffi::Result<ffi::AnyBuffer> idx) {
  Problem p;
  if (auto err = MakeProblem(x.element_type(), x.dimensions(), k.dimensions(), &p,
                              g_chunk_bytes);
      err.failure())
    return err;
  if (k.element_type() != x.element_type() || out->element_type() != x.element_type() ||
      idx->element_type() != ffi::DataType::S8) {
    return ffi::Error::InvalidArgument("charjax oneDNN block: bad types in forward");
  }
  std::vector<float> b;
  if (auto err = BiasToF32(bias, p.o, &b); err.failure()) return err;
  try {
    if (p.in == dt::f32) {
      return BlockForwardT<float>(p, static_cast<const float*>(x.untyped_data()),
                                  k.untyped_data(), b.data(),
                                  static_cast<float*>(out->untyped_data()),
                                  static_cast<int8_t*>(idx->untyped_data()));
    }
    return BlockForwardT<uint16_t>(p, static_cast<const uint16_t*>(x.untyped_data()),
                                   k.untyped_data(), b.data(),
                                   static_cast<uint16_t*>(out->untyped_data()),
                                   static_cast<int8_t*>(idx->untyped_data()));
  } catch (const dnnl::error& err) {
    return ffi::Error::Internal(std::string("charjax oneDNN block: ") + err.what());
  }
}

ffi::Error BlockBackwardImpl(ffi::AnyBuffer x, void* kernel, ffi::AnyBuffer idx,
                             ffi::AnyBuffer g, void* dx, ffi::AnyBuffer::Dimensions hwio,
                             ffi::Result<ffi::AnyBuffer>& dk, ffi::Result<ffi::AnyBuffer>& db) {
  Problem p;
  if (auto err = MakeProblem(x.element_type(), x.dimensions(), hwio, &p, g_chunk_bytes_bwd);
      err.failure())
    return err;
  if (g.element_type() != x.element_type() || idx.element_type() != ffi::DataType::S8 ||
      dk->element_type() != ffi::DataType::F32 || db->element_type() != ffi::DataType::F32) {
    return ffi::Error::InvalidArgument("charjax oneDNN block: bad types in backward");
  }
  const auto* f = static_cast<const int8_t*>(idx.untyped_data());
  auto* dkp = static_cast<float*>(dk->untyped_data());
  auto* dbp = static_cast<float*>(db->untyped_data());
  try {
    if (p.in == dt::f32) {
      return BlockBackwardT<float>(p, static_cast<const float*>(x.untyped_data()), kernel, f,
                                   static_cast<const float*>(g.untyped_data()),
                                   static_cast<float*>(dx), dkp, dbp);
    }
    return BlockBackwardT<uint16_t>(p, static_cast<const uint16_t*>(x.untyped_data()), kernel,
                                    f, static_cast<const uint16_t*>(g.untyped_data()),
                                    static_cast<uint16_t*>(dx), dkp, dbp);
  } catch (const dnnl::error& err) {
    return ffi::Error::Internal(std::string("charjax oneDNN block: ") + err.what());
  }
}

// dx[N,H,W,C], dk[KH,KW,C,O] (float32), db[O] (float32) from x, k, idx and g[N,Hp,Wp,O]
ffi::Error BlockBackward(ffi::AnyBuffer x, ffi::AnyBuffer k, ffi::AnyBuffer idx,
                         ffi::AnyBuffer g, ffi::Result<ffi::AnyBuffer> dx,
                         ffi::Result<ffi::AnyBuffer> dk, ffi::Result<ffi::AnyBuffer> db) {
  if (k.element_type() != x.element_type() || dx->element_type() != x.element_type()) {
    return ffi::Error::InvalidArgument("charjax oneDNN block: bad types in backward");
  }
  return BlockBackwardImpl(x, k.untyped_data(), idx, g, dx->untyped_data(), k.dimensions(),
                           dk, db);
}

// dk, db only (the input needs no gradient: the first layer)
ffi::Error BlockBackwardWeights(ffi::AnyBuffer x, ffi::AnyBuffer idx, ffi::AnyBuffer g,
                                ffi::Result<ffi::AnyBuffer> dk,
                                ffi::Result<ffi::AnyBuffer> db) {
  return BlockBackwardImpl(x, nullptr, idx, g, nullptr, dk->dimensions(), dk, db);
}

}  // namespace

#ifdef CHARJAX_UNFUSED_TARGETS
XLA_FFI_DEFINE_HANDLER_SYMBOL(CharjaxConvForward, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(CharjaxConvBackwardData, BackwardData,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(CharjaxConvBackwardWeights, BackwardWeights,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());
#endif  // CHARJAX_UNFUSED_TARGETS

XLA_FFI_DEFINE_HANDLER_SYMBOL(CharjaxBlockForward, BlockForward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(CharjaxBlockBackward, BlockBackward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(CharjaxBlockBackwardWeights, BlockBackwardWeights,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());

// Float32 conv output per chunk of the fused blocks, in bytes (for measurements).
extern "C" void charjax_onednn_set_chunk_bytes(long forward, long backward) {
  g_chunk_bytes = forward > 0 ? forward : kChunkBytes;
  g_chunk_bytes_bwd = backward > 0 ? backward : kChunkBytes;
}

extern "C" void charjax_onednn_set_threads(int threads) { g_threads = threads; }

// Fused blocks on batches below `batch` run on one thread (for measurements; <= 0: the
// default, kSmallBatchChunked).
extern "C" void charjax_onednn_set_small_batch(long batch) {
  g_small_batch = batch > 0 ? batch : kSmallBatchChunked;
}

// oneDNN's version, for the run's log.
extern "C" int charjax_onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  return v->major * 10000 + v->minor * 100 + v->patch;
}
