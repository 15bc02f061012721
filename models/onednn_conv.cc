// XLA FFI handlers that run a 2-D convolution with oneDNN: the forward, the input gradient and
// the weight gradient (apart, or both in one call) of an NHWC x HWIO -> NHWC float32
// convolution with explicit padding and strides (no dilation, no groups). XLA checks the
// buffers' type (float32) before a call. models/onednn_conv.py builds this file on first use
// and says why it exists; the handlers read and write XLA's buffers in place.
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using Tag = memory::format_tag;

namespace {

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// One convolution's shape: the key of the primitive cache.
struct Geometry {
  int64_t n, h, w, ci, oh, ow, co, kh, kw, sh, sw, pt, pb, pl, pr;
  auto Key() const { return std::tie(n, h, w, ci, oh, ow, co, kh, kw, sh, sw, pt, pb, pl, pr); }
  bool operator<(const Geometry& o) const { return Key() < o.Key(); }
  // oneDNN names dimensions in NCHW / OIHW order; the tag gives the memory layout.
  memory::desc Input() const { return {{n, ci, h, w}, memory::data_type::f32, Tag::nhwc}; }
  memory::desc Output() const { return {{n, co, oh, ow}, memory::data_type::f32, Tag::nhwc}; }
  memory::desc Kernel(Tag tag = Tag::hwio) const {
    return {{co, ci, kh, kw}, memory::data_type::f32, tag};
  }
};

// The three primitives of one geometry. Activations stay NHWC (XLA's buffers, no copies); the
// kernel takes whatever blocked layout oneDNN prefers (`any`), reordered from HWIO per call: it
// is small. The scratchpad is ours (`user` mode), so concurrent calls (one per device of a CPU
// mesh) never share one.
struct Primitives {
  dnnl::convolution_forward::primitive_desc forward_pd;
  dnnl::convolution_backward_data::primitive_desc input_gradient_pd;
  dnnl::convolution_backward_weights::primitive_desc weight_gradient_pd;
  dnnl::primitive forward, input_gradient, weight_gradient;

  explicit Primitives(const Geometry& g) {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const memory::dims strides{g.sh, g.sw}, pad_lo{g.pt, g.pl}, pad_hi{g.pb, g.pr};
    const auto direct = dnnl::algorithm::convolution_direct;
    forward_pd = {Engine(), dnnl::prop_kind::forward_training, direct, g.Input(),
                  g.Kernel(Tag::any), g.Output(), strides, pad_lo, pad_hi, attr};
    input_gradient_pd = {Engine(), direct, g.Input(), g.Kernel(Tag::any), g.Output(),
                         strides, pad_lo, pad_hi, forward_pd, attr};
    weight_gradient_pd = {Engine(), direct, g.Input(), g.Kernel(Tag::any), g.Output(),
                          strides, pad_lo, pad_hi, forward_pd, attr};
    forward = dnnl::convolution_forward(forward_pd);
    input_gradient = dnnl::convolution_backward_data(input_gradient_pd);
    weight_gradient = dnnl::convolution_backward_weights(weight_gradient_pd);
  }
};

// Built once per geometry and process (building one JIT-compiles its kernels: milliseconds).
const Primitives& Cached(const Geometry& g) {
  static std::mutex mutex;
  static std::map<Geometry, Primitives> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(g);
  if (it == cache.end()) it = cache.emplace(g, Primitives(g)).first;
  return it->second;  // std::map never moves its elements
}

memory Scratchpad(const memory::desc& desc) {
  thread_local std::vector<char> buffer;
  if (buffer.size() < desc.get_size()) buffer.resize(desc.get_size());
  return memory(desc, Engine(), buffer.data());
}

// `hwio` itself when the primitive takes HWIO, else a copy in its layout.
memory KernelFor(const memory::desc& wanted, memory hwio, dnnl::stream& stream) {
  if (wanted == hwio.get_desc()) return hwio;
  memory blocked(wanted, Engine());
  dnnl::reorder(hwio, blocked).execute(stream, hwio, blocked);
  return blocked;
}

Geometry Shape(ffi::Span<const int64_t> input, ffi::Span<const int64_t> kernel,
               ffi::Span<const int64_t> output, int64_t sh, int64_t sw, int64_t pt, int64_t pb,
               int64_t pl, int64_t pr) {
  return {input[0], input[1], input[2], input[3], output[1], output[2], output[3],
          kernel[0], kernel[1], sh, sw, pt, pb, pl, pr};
}

using F32 = ffi::Buffer<ffi::F32>;
using F32Result = ffi::ResultBuffer<ffi::F32>;
float* Data(F32 buffer) { return buffer.typed_data(); }
float* Data(F32Result buffer) { return buffer->typed_data(); }

// One call at a time: XLA may run independent thunks concurrently (a layer's input and weight
// gradients; each device's slice on a CPU mesh), and each oneDNN call starts a team of OpenMP
// threads as wide as the machine: several at once would oversubscribe its cores.
template <typename Body>
ffi::Error Guarded(Body body) {
  static std::mutex one_at_a_time;
  std::lock_guard<std::mutex> lock(one_at_a_time);
  try {
    body();
  } catch (const dnnl::error& e) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("oneDNN: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error Forward(F32 x, F32 k, F32Result y,
                   int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  return Guarded([&] {
    Geometry g = Shape(x.dimensions(), k.dimensions(), y->dimensions(), sh, sw, pt, pb, pl, pr);
    const Primitives& p = Cached(g);
    dnnl::stream stream(Engine());
    memory kernel = KernelFor(p.forward_pd.weights_desc(), memory(g.Kernel(), Engine(), Data(k)),
                              stream);
    p.forward.execute(stream, {{DNNL_ARG_SRC, memory(g.Input(), Engine(), Data(x))},
                               {DNNL_ARG_WEIGHTS, kernel},
                               {DNNL_ARG_DST, memory(g.Output(), Engine(), Data(y))},
                               {DNNL_ARG_SCRATCHPAD, Scratchpad(p.forward_pd.scratchpad_desc())}});
    stream.wait();
  });
}

// The two gradients' bodies, shared by their handlers and by `Gradients`.
void RunInputGradient(const Geometry& g, float* dy, float* k, float* dx) {
  const Primitives& p = Cached(g);
  dnnl::stream stream(Engine());
  memory kernel = KernelFor(p.input_gradient_pd.weights_desc(), memory(g.Kernel(), Engine(), k),
                            stream);
  p.input_gradient.execute(
      stream, {{DNNL_ARG_DIFF_DST, memory(g.Output(), Engine(), dy)},
               {DNNL_ARG_WEIGHTS, kernel},
               {DNNL_ARG_DIFF_SRC, memory(g.Input(), Engine(), dx)},
               {DNNL_ARG_SCRATCHPAD, Scratchpad(p.input_gradient_pd.scratchpad_desc())}});
  stream.wait();
}

void RunWeightGradient(const Geometry& g, float* x, float* dy, float* dk) {
  const Primitives& p = Cached(g);
  dnnl::stream stream(Engine());
  memory hwio(g.Kernel(), Engine(), dk);
  const memory::desc wanted = p.weight_gradient_pd.diff_weights_desc();
  memory kernel = wanted == g.Kernel() ? hwio : memory(wanted, Engine());
  p.weight_gradient.execute(
      stream, {{DNNL_ARG_SRC, memory(g.Input(), Engine(), x)},
               {DNNL_ARG_DIFF_DST, memory(g.Output(), Engine(), dy)},
               {DNNL_ARG_DIFF_WEIGHTS, kernel},
               {DNNL_ARG_SCRATCHPAD, Scratchpad(p.weight_gradient_pd.scratchpad_desc())}});
  if (wanted != g.Kernel()) dnnl::reorder(kernel, hwio).execute(stream, kernel, hwio);
  stream.wait();
}

ffi::Error InputGradient(F32 dy, F32 k, F32Result dx,
                         int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  return Guarded([&] {
    RunInputGradient(
        Shape(dx->dimensions(), k.dimensions(), dy.dimensions(), sh, sw, pt, pb, pl, pr),
        Data(dy), Data(k), Data(dx));
  });
}

ffi::Error WeightGradient(F32 x, F32 dy, F32Result dk,
                          int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  return Guarded([&] {
    RunWeightGradient(
        Shape(x.dimensions(), dk->dimensions(), dy.dimensions(), sh, sw, pt, pb, pl, pr),
        Data(x), Data(dy), Data(dk));
  });
}

// Both gradients in one call, back to back: the second reads the cotangent while it is still
// in cache, and XLA cannot schedule the two apart (ResNet-20's 3x3 gradients, b128: 72 ms
// against 82 ms as two calls).
ffi::Error Gradients(F32 x, F32 dy, F32 k, F32Result dx, F32Result dk,
                     int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  return Guarded([&] {
    Geometry g = Shape(x.dimensions(), k.dimensions(), dy.dimensions(), sh, sw, pt, pb, pl, pr);
    RunInputGradient(g, Data(dy), Data(k), Data(dx));
    RunWeightGradient(g, Data(x), Data(dy), Data(dk));
  });
}

}  // namespace

#define CONVJAX_ONEDNN_GEOMETRY     \
  .Attr<int64_t>("stride_h")        \
      .Attr<int64_t>("stride_w")    \
      .Attr<int64_t>("pad_top")     \
      .Attr<int64_t>("pad_bottom")  \
      .Attr<int64_t>("pad_left")    \
      .Attr<int64_t>("pad_right")

#define CONVJAX_ONEDNN_BINDING \
  ffi::Ffi::Bind().Arg<F32>().Arg<F32>().Ret<F32>() CONVJAX_ONEDNN_GEOMETRY

XLA_FFI_DEFINE_HANDLER_SYMBOL(ConvjaxOnednnForward, Forward, CONVJAX_ONEDNN_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(ConvjaxOnednnInputGradient, InputGradient, CONVJAX_ONEDNN_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(ConvjaxOnednnWeightGradient, WeightGradient, CONVJAX_ONEDNN_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(ConvjaxOnednnGradients, Gradients,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>() CONVJAX_ONEDNN_GEOMETRY);
