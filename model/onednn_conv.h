#ifndef MODEL_ONEDNN_CONV_H_
#define MODEL_ONEDNN_CONV_H_

// A convolution with its ReLU fused, run by oneDNN directly. LibTorch 1.13
// runs the ReLU as a separate pass over each feature map, which was a fifth
// of a CPU forward pass (docs/performance.md); as a oneDNN post-op it is
// applied while the output is still in registers.

#include <ATen/ATen.h>

namespace unet {

// Whether ConvolveRelu is built in (Debian's oneDNN headers were found) and
// enabled.
bool HasFusedConvolveRelu();

// Turns the fused path off or on for the whole process (on by default), so
// that a benchmark can time LibTorch's own path beside it.
void EnableFusedConvolveRelu(bool enabled);

// relu(conv2d(x, weight, bias)): unpadded, stride 1, fp32 on the CPU,
// channels-last when x or the weights are or x has one channel, else
// contiguous. Throws (c10::Error or
// dnnl::error) when called without HasFusedConvolveRelu or on other input.
at::Tensor ConvolveRelu(const at::Tensor& x, const at::Tensor& weight,
                        const at::Tensor& bias);

}  // namespace unet

#endif  // MODEL_ONEDNN_CONV_H_
