// oneDNN convolutions as XLA FFI targets: forward, backward-data, backward-weights.
//
// Activations are NHWC, weights HWIO (JAX's layout for nn.Conv), stride 1, VALID.
// float32 or bfloat16 inputs; the forward result and the weight gradient are float32
// (bf16 products accumulate in float32), the input gradient has the input's type.
// Primitives are built once per (op, type, shape) and kept; executing a oneDNN
// primitive from several threads at once is allowed, so XLA may run independent calls
// concurrently. Weights are reordered per call between HWIO and the blocked layout the
// primitive chose (a few kB), which keeps the cached state read-only.
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

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
constexpr int64_t kSmallBatch = 64;

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
  // (oneDNN partitions the work by it). Small batches run on one thread: measured at
  // batch 32 on 2 cores, a 2-thread team made the whole step 19-21 ms instead of 13.
  if (g_threads > 0) omp_set_num_threads(nhwc[0] < kSmallBatch ? 1 : g_threads);
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

}  // namespace

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

extern "C" void charjax_onednn_set_threads(int threads) { g_threads = threads; }

// oneDNN's version, for the run's log.
extern "C" int charjax_onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  return v->major * 10000 + v->minor * 100 + v->patch;
}
