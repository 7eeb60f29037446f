#include "model/training/trainer.h"

#include <torch/torch.h>

#include <fstream>
#include <iostream>
#include <opencv2/core.hpp>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "model/model_writer.h"
#include "model/training/dataset.h"
#include "model/unet_geometry.h"
#include "server/postprocess.h"
#include "server/preprocess.h"

namespace unet {
namespace {

constexpr int kLevels = 5;

// A random training tile: the network input around an output window, with
// the label and weights of that window.
struct Tile {
  torch::Tensor input, target, weights;
};

Tile RandomTile(const Sample& sample, int input_side, float mean, float stddev,
                std::mt19937& random) {
  const int margin = ContextMargin(kLevels);
  const int output_side = input_side - 2 * margin;
  // Mirror the context in, so that any output window of the image is a
  // valid tile, as the server mirrors around a whole image.
  cv::Mat image;
  cv::copyMakeBorder(sample.image, image, margin, margin, margin, margin,
                     cv::BORDER_REFLECT_101);
  const int rows = sample.image.rows, cols = sample.image.cols;
  std::uniform_int_distribution<int> y_at(0, std::max(0, rows - output_side));
  std::uniform_int_distribution<int> x_at(0, std::max(0, cols - output_side));
  const int y = y_at(random), x = x_at(random);
  cv::Mat input;
  image(cv::Rect(x, y, input_side, input_side))
      .convertTo(input, CV_32F, 1.0 / (255.0 * stddev), -mean / stddev);
  cv::Mat target;
  sample.label(cv::Rect(x, y, output_side, output_side))
      .convertTo(target, CV_64F);
  const cv::Mat weights =
      sample.weights(cv::Rect(x, y, output_side, output_side)).clone();
  Tile tile;
  tile.input =
      torch::from_blob(input.data, {1, 1, input_side, input_side}).clone();
  tile.target = torch::from_blob(target.data, {1, output_side, output_side},
                                 torch::kFloat64)
                    .to(torch::kLong);
  tile.weights =
      torch::from_blob(weights.data, {1, output_side, output_side}).clone();
  return tile;
}

// Border-weighted cross-entropy of (N, C, H, W) logits.
torch::Tensor WeightedCrossEntropy(const torch::Tensor& logits,
                                   const torch::Tensor& target,
                                   const torch::Tensor& weights) {
  const torch::Tensor log_p =
      torch::log_softmax(logits, 1).gather(1, target.unsqueeze(1)).squeeze(1);
  return -(weights * log_p).sum() / weights.sum();
}

// Segments `samples` as the server would and scores them against their labels.
absl::StatusOr<std::map<std::string, double>> Validate(
    UNet& net, const std::vector<Sample>& samples, const ModelConfig& config,
    torch::Device device) {
  torch::NoGradGuard no_grad;
  net->eval();
  int64_t pixels = 0, wrong = 0;
  int64_t intersection[2] = {0, 0}, predicted[2] = {0, 0}, actual[2] = {0, 0};
  for (const Sample& sample : samples) {
    ASSIGN_OR_RETURN(const PreparedImage prepared,
                     Preprocess(sample.image, config));
    const torch::Tensor input =
        torch::from_blob(const_cast<float*>(prepared.chw.data()),
                         {1, 1, prepared.padded_height, prepared.padded_width})
            .to(device);
    const torch::Tensor logits = net(input).to(torch::kCPU).contiguous();
    ASSIGN_OR_RETURN(
        const Segmentation segmentation,
        ExtractSegmentation(logits.data_ptr<float>(), 2, logits.size(2),
                            logits.size(3), prepared, false));
    for (int c = 0; c < 2; ++c) {
      const cv::Mat p = segmentation.mask == c, a = sample.label == c;
      intersection[c] += cv::countNonZero(p & a);
      predicted[c] += cv::countNonZero(p);
      actual[c] += cv::countNonZero(a);
    }
    wrong += cv::countNonZero(segmentation.mask != sample.label);
    pixels += sample.label.total();
  }
  net->train();
  std::map<std::string, double> metrics;
  metrics["pixel_error"] = static_cast<double>(wrong) / pixels;
  const char* names[2] = {"cell", "membrane"};
  for (int c = 0; c < 2; ++c) {
    const double inter = intersection[c];
    metrics[absl::StrCat("dice_", names[c])] =
        2 * inter / std::max<int64_t>(1, predicted[c] + actual[c]);
    metrics[absl::StrCat("iou_", names[c])] =
        inter / std::max<double>(1, predicted[c] + actual[c] - inter);
  }
  return metrics;
}

}  // namespace

absl::Status Train(const TrainerOptions& options) {
  torch::manual_seed(options.seed);
  std::mt19937 random(options.seed);
  ASSIGN_OR_RETURN(std::vector<Sample> samples,
                   LoadLabelledImages(options.data));
  if (static_cast<int>(samples.size()) <= options.validation_images ||
      options.validation_images < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(samples.size(), " labelled images cannot hold out ",
                     options.validation_images, " for validation"));
  }
  const std::vector<Sample> validation(
      samples.end() - options.validation_images, samples.end());
  samples.resize(samples.size() - options.validation_images);

  // Normalisation from the training images, written into model.json.
  double sum = 0, sum_sq = 0, count = 0;
  for (const Sample& s : samples) {
    cv::Mat unit;
    s.image.convertTo(unit, CV_64F, 1.0 / 255);
    sum += cv::sum(unit)[0];
    sum_sq += cv::sum(unit.mul(unit))[0];
    count += unit.total();
  }
  const float mean = sum / count;
  const float stddev = std::sqrt(sum_sq / count - mean * mean);

  std::vector<int> channels;
  for (int level = 0; level < kLevels; ++level) {
    channels.push_back(options.width << level);
  }
  ModelConfig config = DefaultModelConfig(1, 2, channels);
  config.set_class_names(kCellClass, "cell");
  config.set_class_names(kMembraneClass, "membrane");
  config.mutable_normalization()->set_mean(0, mean);
  config.mutable_normalization()->set_std(0, stddev);

  UNetOptions net_options = OptionsFromArchitecture(config.architecture());
  net_options.dropout = options.dropout;
  UNet net(net_options);
  const torch::Device device(options.device);
  net->to(device);
  net->train();
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  if (options.optimizer == "sgd") {
    optimizer = std::make_unique<torch::optim::SGD>(
        net->parameters(),
        torch::optim::SGDOptions(options.learning_rate).momentum(0.99));
  } else if (options.optimizer == "adam") {
    optimizer = std::make_unique<torch::optim::Adam>(
        net->parameters(), torch::optim::AdamOptions(options.learning_rate));
  } else {
    return absl::InvalidArgumentError("optimizer must be adam or sgd");
  }

  const std::filesystem::path model_dir = options.model_root / options.name;
  std::filesystem::create_directories(model_dir);
  std::ofstream log(model_dir / "training_log.csv", std::ios::app);
  log << "step,loss,pixel_error,dice_membrane,iou_membrane\n";
  const int tile_side = NextValidInputSide(options.tile, kLevels);
  const int output_side = tile_side - 2 * ContextMargin(kLevels);
  for (const Sample& s : samples) {
    if (std::min(s.image.rows, s.image.cols) < output_side) {
      return absl::InvalidArgumentError(
          absl::StrCat("tile ", tile_side, " has a ", output_side,
                       " px output, larger than a training image"));
    }
  }
  const AugmentOptions augment;
  std::uniform_int_distribution<size_t> pick(0, samples.size() - 1);
  const absl::Time start = absl::Now();
  double running_loss = 0;
  for (int step = 1; step <= options.steps; ++step) {
    const Sample augmented = Augment(samples[pick(random)], augment, random);
    const Tile tile = RandomTile(augmented, tile_side, mean, stddev, random);
    optimizer->zero_grad();
    const torch::Tensor loss =
        WeightedCrossEntropy(net(tile.input.to(device)), tile.target.to(device),
                             tile.weights.to(device));
    loss.backward();
    optimizer->step();
    const double value = loss.item<double>();
    running_loss = step == 1 ? value : 0.95 * running_loss + 0.05 * value;
    if (!std::isfinite(value)) {
      return absl::InternalError(
          absl::StrCat("loss is ", value, " at step ", step));
    }
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    if (step % 10 == 0 || step == options.steps) {
      std::cout << absl::StrFormat(
                       "step %d/%d  loss %.4f  %.2f tiles/s  eta %.0f s", step,
                       options.steps, running_loss, step / seconds,
                       (options.steps - step) * seconds / step)
                << std::endl;
    }
    if (step % options.checkpoint_every != 0 && step != options.steps) {
      log << step << "," << value << ",,,\n";
      continue;
    }
    ASSIGN_OR_RETURN(const auto metrics,
                     Validate(net, validation, config, device));
    log << step << "," << value << "," << metrics.at("pixel_error") << ","
        << metrics.at("dice_membrane") << "," << metrics.at("iou_membrane")
        << std::endl;
    config.mutable_training()->set_step(step);
    config.mutable_training()->mutable_metrics()->clear();
    config.mutable_training()->mutable_metrics()->insert(metrics.begin(),
                                                         metrics.end());
    ASSIGN_OR_RETURN(const int64_t version,
                     NextVersion(options.model_root, options.name));
    net->to(torch::kCPU);
    ASSIGN_OR_RETURN(const std::filesystem::path written,
                     WriteModelVersion(options.model_root, options.name,
                                       version, net, config));
    net->to(device);
    std::cout << absl::StrFormat("step %d: pixel error %.4f -> %s", step,
                                 metrics.at("pixel_error"), written.string())
              << std::endl;
  }
  return absl::OkStatus();
}

}  // namespace unet
