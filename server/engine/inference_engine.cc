#include "server/engine/inference_engine.h"

namespace unet {

absl::StatusOr<LabelTensor> InferenceEngine::ForwardLabels(
    const FloatTensor& batch) {
  absl::StatusOr<FloatTensor> logits = Forward(batch);
  if (!logits.ok()) return logits.status();
  const std::vector<int64_t>& dims = logits->shape;
  if (dims.size() != 4 || dims[1] < 1 || dims[1] > 256) {
    return absl::InternalError("model returned logits of an unusable shape");
  }
  const int64_t images = dims[0], classes = dims[1];
  const int64_t plane = dims[2] * dims[3];
  LabelTensor labels{{images, dims[2], dims[3]}, {}};
  labels.values.resize(images * plane);
  for (int64_t i = 0; i < images; ++i) {
    const float* image_logits = logits->values.data() + i * classes * plane;
    uint8_t* image_labels = labels.values.data() + i * plane;
    for (int64_t at = 0; at < plane; ++at) {
      int best = 0;
      for (int c = 1; c < classes; ++c) {
        if (image_logits[c * plane + at] > image_logits[best * plane + at]) {
          best = c;
        }
      }
      image_labels[at] = static_cast<uint8_t>(best);
    }
  }
  return labels;
}

}  // namespace unet
