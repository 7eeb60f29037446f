#include "model/onednn_conv.h"

#include <atomic>

#ifdef UNET_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace unet {
namespace {

std::atomic<bool> fused_enabled{true};

}  // namespace

void EnableFusedConvolveRelu(bool enabled) { fused_enabled = enabled; }

#ifdef UNET_WITH_ONEDNN

namespace {

using dnnl::memory;

const dnnl::engine& CpuEngine() {
  static const dnnl::engine* engine =
      new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

}  // namespace

bool HasFusedConvolveRelu() { return fused_enabled; }

at::Tensor ConvolveRelu(const at::Tensor& x, const at::Tensor& weight,
                        const at::Tensor& bias) {
  TORCH_CHECK(x.dim() == 4 && weight.dim() == 4 && bias.dim() == 1,
              "ConvolveRelu takes NCHW input, OIHW weights and a bias");
  TORCH_CHECK(x.is_cpu() && x.scalar_type() == at::kFloat &&
                  weight.scalar_type() == at::kFloat &&
                  bias.scalar_type() == at::kFloat,
              "ConvolveRelu runs fp32 on the CPU");
  TORCH_CHECK(x.size(1) == weight.size(1) && bias.size(0) == weight.size(0),
              "ConvolveRelu: channels do not match");
  // Channels-last when x or the weights are, as LibTorch's convolution
  // decides, and for a one-channel image (both layouts at once): oneDNN's
  // one-channel kernel into channels-last ran 7x faster than LibTorch's
  // choice of im2col and GEMM into NCHW (docs/performance.md).
  const bool channels_last =
      x.size(1) == 1 ||
      x.suggest_memory_format() == at::MemoryFormat::ChannelsLast ||
      weight.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
  const at::MemoryFormat format = channels_last ? at::MemoryFormat::ChannelsLast
                                                : at::MemoryFormat::Contiguous;
  const at::Tensor src = x.contiguous(format);
  const at::Tensor plain_weight = weight.contiguous();
  const at::Tensor plain_bias = bias.contiguous();
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t oc = weight.size(0), kh = weight.size(2), kw = weight.size(3);
  TORCH_CHECK(h >= kh && w >= kw, "ConvolveRelu: input smaller than kernel");
  at::Tensor out = at::empty({n, oc, h - kh + 1, w - kw + 1},
                             x.options().memory_format(format));

  const memory::format_tag tag =
      channels_last ? memory::format_tag::nhwc : memory::format_tag::nchw;
  const auto f32 = memory::data_type::f32;
  const memory::desc src_md({n, c, h, w}, f32, tag);
  const memory::desc dst_md({n, oc, out.size(2), out.size(3)}, f32, tag);
  const memory::desc bias_md({oc}, f32, memory::format_tag::x);
  const memory::desc user_weights_md({oc, c, kh, kw}, f32,
                                     memory::format_tag::oihw);
  // The kernel picks its own weight layout (blocked for the vector width).
  const memory::desc any_weights_md({oc, c, kh, kw}, f32,
                                    memory::format_tag::any);
  dnnl::post_ops relu;
  relu.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
  dnnl::primitive_attr attributes;
  attributes.set_post_ops(relu);
  const dnnl::convolution_forward::primitive_desc plan(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                      dnnl::algorithm::convolution_direct,
                                      src_md, any_weights_md, bias_md, dst_md,
                                      /*strides=*/{1, 1}, /*padding_l=*/{0, 0},
                                      /*padding_r=*/{0, 0}),
      attributes, CpuEngine());

  dnnl::stream stream(CpuEngine());
  memory weights(user_weights_md, CpuEngine(), plain_weight.data_ptr());
  if (plan.weights_desc() != user_weights_md) {
    memory reordered(plan.weights_desc(), CpuEngine());
    dnnl::reorder(weights, reordered).execute(stream, weights, reordered);
    weights = reordered;
  }
  dnnl::convolution_forward(plan).execute(
      stream,
      {{DNNL_ARG_SRC, memory(src_md, CpuEngine(), src.data_ptr())},
       {DNNL_ARG_WEIGHTS, weights},
       {DNNL_ARG_BIAS, memory(bias_md, CpuEngine(), plain_bias.data_ptr())},
       {DNNL_ARG_DST, memory(dst_md, CpuEngine(), out.data_ptr())}});
  stream.wait();
  return out;
}

#else  // !UNET_WITH_ONEDNN

bool HasFusedConvolveRelu() { return false; }

at::Tensor ConvolveRelu(const at::Tensor&, const at::Tensor&,
                        const at::Tensor&) {
  TORCH_CHECK(false, "built without oneDNN: no fused convolution");
}

#endif

}  // namespace unet
