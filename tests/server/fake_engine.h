#ifndef TESTS_SERVER_FAKE_ENGINE_H_
#define TESTS_SERVER_FAKE_ENGINE_H_

// An InferenceEngine without a network, for tests of the request path: it
// passes channel 0 of its input through with the seed U-Net's geometry (the
// output loses the context margin on each side) as the logit of class 1,
// against a constant 0.5 for class 0. A correct request path therefore
// returns the image thresholded at 0.5.

#include <atomic>
#include <functional>
#include <future>
#include <memory>

#include "absl/status/status.h"
#include "model/unet_geometry.h"
#include "server/engine/inference_engine.h"
#include "server/lifecycle/model_manager.h"

namespace unet {

class FakeEngine : public InferenceEngine {
 public:
  explicit FakeEngine(int levels = 5) : shrink_(ContextMargin(levels)) {}

  absl::StatusOr<FloatTensor> Forward(const FloatTensor& batch) override {
    ++calls;
    last_batch = batch.shape.empty() ? 0 : batch.shape[0];
    int64_t elements = 1;
    for (int64_t d : batch.shape) elements *= d;
    if (batch.shape.size() != 4 ||
        elements != static_cast<int64_t>(batch.values.size())) {
      return absl::InvalidArgumentError("batch is not a dense NCHW tensor");
    }
    if (before_forward) before_forward();
    if (!fail_with.ok()) return fail_with;
    if (max_batch_that_fits > 0 && batch.shape[0] > max_batch_that_fits) {
      ++out_of_memory;
      return absl::ResourceExhaustedError("fake device out of memory");
    }
    const int64_t n = batch.shape[0], c = batch.shape[1];
    const int64_t in_h = batch.shape[2], in_w = batch.shape[3];
    const int64_t h = in_h - 2 * shrink_, w = in_w - 2 * shrink_;
    FloatTensor out{{n, 2, h, w}, std::vector<float>(n * 2 * h * w, 0.5f)};
    for (int64_t i = 0; i < n; ++i) {
      const float* in = batch.values.data() + i * c * in_h * in_w;
      float* logit1 = out.values.data() + (i * 2 + 1) * h * w;
      for (int64_t y = 0; y < h; ++y) {
        for (int64_t x = 0; x < w; ++x) {
          logit1[y * w + x] = in[(y + shrink_) * in_w + x + shrink_];
        }
      }
    }
    return out;
  }

  std::string device() const override { return "fake"; }

  // Makes the first Forward set `entered`, then wait for `release`.
  void HoldFirstForward(std::promise<void>& entered,
                        std::promise<void>& release) {
    std::shared_future<void> released = release.get_future().share();
    before_forward = [&entered, released, first = true]() mutable {
      if (first) {
        first = false;
        entered.set_value();
        released.wait();
      }
    };
  }

  std::atomic<int> calls{0};
  std::atomic<int64_t> last_batch{0};    // N of the latest batch
  std::function<void()> before_forward;  // runs inside every Forward
  absl::Status fail_with;
  // Batches larger than this fail with RESOURCE_EXHAUSTED (0: any fits).
  int64_t max_batch_that_fits = 0;
  std::atomic<int> out_of_memory{0};

 private:
  const int shrink_;
};

// Returns version `version` of a model "fake" with the seed's geometry (two
// classes) whose one engine is `engine`.
inline std::shared_ptr<LoadedModel> FakeModel(
    std::shared_ptr<FakeEngine> engine, int64_t version) {
  auto model = std::make_shared<LoadedModel>();
  model->name = "fake";
  model->version = version;
  model->config = DefaultModelConfig(1, 2, {2, 4, 8, 16, 32});
  model->engines.push_back(std::move(engine));
  return model;
}

}  // namespace unet

#endif  // TESTS_SERVER_FAKE_ENGINE_H_
