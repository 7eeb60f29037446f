#include "model/training/trainer.h"

#include <torch/torch.h>

#include <fstream>
#include <opencv2/core.hpp>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/cpu_threads.h"
#include "common/ordered_prefetcher.h"
#include "common/status_macros.h"
#include "model/model_repository.h"
#include "model/model_writer.h"
#include "model/training/dataset.h"
#include "model/training/progress.h"
#include "model/training/training_plot.h"
#include "model/training/validation.h"
#include "model/unet_geometry.h"

namespace unet {
namespace {

namespace fs = std::filesystem;

constexpr int kLevels = 5;
constexpr char kLogHeader[] =
    "step,loss,pixel_error,rand_error,misclassified_fraction,"
    "thinned_rand_error";

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
  // OpenCV writes straight into the tensors' memory: no ATen copy kernels,
  // which on the prefetch threads would each start a thread team.
  const cv::Rect window(x, y, output_side, output_side);
  Tile tile;
  tile.input = torch::empty({1, 1, input_side, input_side});
  cv::Mat input(input_side, input_side, CV_32F, tile.input.data_ptr<float>());
  image(cv::Rect(x, y, input_side, input_side))
      .convertTo(input, CV_32F, 1.0 / (255.0 * stddev), -mean / stddev);
  tile.weights = torch::empty({1, output_side, output_side});
  cv::Mat weights(output_side, output_side, CV_32F,
                  tile.weights.data_ptr<float>());
  sample.weights(window).copyTo(weights);
  CV_Assert(sample.label.type() == CV_8U);
  tile.target = torch::empty({1, output_side, output_side}, torch::kLong);
  int64_t* target = tile.target.data_ptr<int64_t>();
  for (int row = 0; row < output_side; ++row) {
    const uint8_t* label = sample.label.ptr<uint8_t>(y + row) + x;
    for (int col = 0; col < output_side; ++col) *target++ = label[col];
  }
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

// Scores `net` on `samples` as the server would segment them.
absl::StatusOr<std::map<std::string, double>> Validate(
    UNet& net, const std::vector<Sample>& samples, const ModelConfig& config,
    torch::Device device) {
  torch::NoGradGuard no_grad;
  net->eval();
  const ForwardPass forward = [&](const FloatTensor& input) {
    const torch::Tensor logits =
        net(torch::from_blob(const_cast<float*>(input.values.data()),
                             input.shape)
                .to(device))
            .to(torch::kCPU)
            .contiguous();
    return FloatTensor{
        logits.sizes().vec(),
        {logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel()}};
  };
  auto metrics = ScoreAsServed(samples, config, forward);
  net->train();
  return metrics;
}

// A fresh model.json: the architecture asked for, the class names, and the
// normalisation of the training images.
ModelConfig FreshConfig(const TrainerOptions& options,
                        const std::vector<Sample>& training) {
  double sum = 0, sum_sq = 0, count = 0;
  for (const Sample& s : training) {
    cv::Mat unit;
    s.image.convertTo(unit, CV_64F, 1.0 / 255);
    sum += cv::sum(unit)[0];
    sum_sq += cv::sum(unit.mul(unit))[0];
    count += unit.total();
  }
  const double mean = sum / count;
  std::vector<int> channels;
  for (int level = 0; level < kLevels; ++level) {
    channels.push_back(options.width << level);
  }
  ModelConfig config = DefaultModelConfig(1, 2, channels);
  config.set_class_names(kCellClass, "cell");
  config.set_class_names(kMembraneClass, "membrane");
  config.mutable_normalization()->set_mean(0, mean);
  config.mutable_normalization()->set_std(
      0, std::sqrt(sum_sq / count - mean * mean));
  return config;
}

// Where a run begins: after `step` steps, from `checkpoint` (a version
// directory) or, when that is empty, from fresh weights.
struct Start {
  ModelConfig config;
  int step = 0;
  fs::path checkpoint;
};

absl::StatusOr<Start> FindStart(const TrainerOptions& options,
                                const std::vector<Sample>& training) {
  if (!options.resume) return Start{FreshConfig(options, training), 0, {}};
  ASSIGN_OR_RETURN(const int64_t newest,
                   NewestVersion(options.model_root, options.name));
  if (newest == 0) {
    return absl::NotFoundError(absl::StrCat("--resume: no version of ",
                                            options.name, " under ",
                                            options.model_root.string()));
  }
  Start start;
  start.checkpoint = options.model_root / options.name / std::to_string(newest);
  ASSIGN_OR_RETURN(start.config,
                   ReadModelConfig(start.checkpoint / kConfigFile));
  start.step = start.config.training().step();
  if (start.config.format() != kFormatLibTorch ||
      !fs::exists(start.checkpoint / kOptimizerFile)) {
    return absl::FailedPreconditionError(
        absl::StrCat("--resume: ", start.checkpoint.string(),
                     " holds no LibTorch weights with optimizer state"));
  }
  if (start.step >= options.steps) {
    return absl::InvalidArgumentError(
        absl::StrCat("--resume: ", start.checkpoint.string(), " is at step ",
                     start.step, " already; --steps must be larger"));
  }
  return start;
}

absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> MakeOptimizer(
    const TrainerOptions& options, UNet& net) {
  if (options.optimizer == "sgd") {
    return std::make_unique<torch::optim::SGD>(
        net->parameters(),
        torch::optim::SGDOptions(options.learning_rate).momentum(0.99));
  }
  if (options.optimizer == "adam") {
    return std::make_unique<torch::optim::Adam>(
        net->parameters(), torch::optim::AdamOptions(options.learning_rate));
  }
  return absl::InvalidArgumentError("optimizer must be adam or sgd");
}

// Each step's randomness comes from (seed, step) alone, so that a resumed run
// takes the same steps as an uninterrupted one: the augmentation and tile
// from StepRandom, dropout from SeedDropout.
std::mt19937 StepRandom(int seed, int step) {
  std::seed_seq sequence{seed, step};
  return std::mt19937(sequence);
}

void SeedDropout(int seed, int step) {
  torch::manual_seed((static_cast<uint64_t>(seed) << 32) | step);
}

}  // namespace

absl::Status Train(const TrainerOptions& options) {
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
  ASSIGN_OR_RETURN(Start start, FindStart(options, samples));
  ModelConfig& config = start.config;
  const auto& normalization = config.normalization();
  const float mean = normalization.mean(0), stddev = normalization.std(0);

  torch::manual_seed(options.seed);  // the initial weights
  UNetOptions net_options = OptionsFromArchitecture(config.architecture());
  net_options.dropout = options.dropout;
  UNet net(net_options);
  if (!start.checkpoint.empty()) {
    RETURN_IF_ERROR(LoadWeights(net, start.checkpoint / kWeightsFile));
  }
  const torch::Device device(options.device);
  if (device.is_cpu()) torch::set_num_threads(UsableCpus());
  net->to(device);
  net->train();
  ASSIGN_OR_RETURN(std::unique_ptr<torch::optim::Optimizer> optimizer,
                   MakeOptimizer(options, net));
  if (!start.checkpoint.empty()) {
    try {
      torch::load(*optimizer, (start.checkpoint / kOptimizerFile).string(),
                  device);
    } catch (const c10::Error& e) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--resume: the optimizer state of ", start.checkpoint.string(),
          " does not fit --optimizer=", options.optimizer, ": ",
          e.what_without_backtrace()));
    }
  }

  const int tile_side = NextValidInputSide(options.tile, kLevels);
  const int output_side = tile_side - 2 * ContextMargin(kLevels);
  for (const Sample& s : samples) {
    if (std::min(s.image.rows, s.image.cols) < output_side) {
      return absl::InvalidArgumentError(
          absl::StrCat("tile ", tile_side, " has a ", output_side,
                       " px output, larger than a training image"));
    }
  }
  const fs::path model_dir = options.model_root / options.name;
  fs::create_directories(model_dir);
  const fs::path log_path = model_dir / "training_log.csv";
  const bool new_log = !fs::exists(log_path) || fs::file_size(log_path) == 0;
  std::ofstream log(log_path, std::ios::app);
  if (new_log) log << kLogHeader << "\n";

  ProgressReporter progress(stdout, options.progress_bar);
  if (!start.checkpoint.empty()) {
    progress.Message(absl::StrCat("resuming ", start.checkpoint.string(),
                                  " at step ", start.step));
  }
  // The tiles are augmented on the CPU by a few threads ahead of the steps,
  // which on a GPU would otherwise wait for them.
  const AugmentOptions augment;
  OrderedPrefetcher<Tile> tiles(
      start.step + 1, UsableCpus(), 2 * UsableCpus(), [&](int step) {
        std::mt19937 random = StepRandom(options.seed, step);
        std::uniform_int_distribution<size_t> pick(0, samples.size() - 1);
        const Sample augmented =
            Augment(samples[pick(random)], augment, random);
        return RandomTile(augmented, tile_side, mean, stddev, random);
      });
  const absl::Time began = absl::Now();
  double running_loss = 0;
  for (int step = start.step + 1; step <= options.steps; ++step) {
    const Tile tile = tiles.Take();
    SeedDropout(options.seed, step);
    optimizer->zero_grad();
    const torch::Tensor loss =
        WeightedCrossEntropy(net(tile.input.to(device)), tile.target.to(device),
                             tile.weights.to(device));
    loss.backward();
    optimizer->step();
    const double value = loss.item<double>();
    if (!std::isfinite(value)) {
      return absl::InternalError(
          absl::StrCat("loss is ", value, " at step ", step));
    }
    const int done = step - start.step;
    running_loss = done == 1 ? value : 0.95 * running_loss + 0.05 * value;
    progress.Update({step, options.steps, running_loss,
                     done / absl::ToDoubleSeconds(absl::Now() - began)});
    const bool out_of_time = options.time_limit > absl::ZeroDuration() &&
                             absl::Now() - began >= options.time_limit;
    if (step % options.checkpoint_every != 0 && step != options.steps &&
        !out_of_time) {
      log << step << "," << value << ",,,,\n";
      continue;
    }
    ASSIGN_OR_RETURN(const auto metrics,
                     Validate(net, validation, config, device));
    log << step << "," << value << "," << metrics.at("pixel_error") << ","
        << metrics.at("rand_error") << ","
        << metrics.at("misclassified_fraction") << ","
        << metrics.at("thinned_rand_error") << std::endl;
    config.mutable_training()->set_step(step);
    config.mutable_training()->mutable_metrics()->clear();
    config.mutable_training()->mutable_metrics()->insert(metrics.begin(),
                                                         metrics.end());
    ASSIGN_OR_RETURN(const int64_t version,
                     NextVersion(options.model_root, options.name));
    net->to(torch::kCPU);  // so that a CPU-only server can read it
    ASSIGN_OR_RETURN(const fs::path written,
                     WriteModelVersion(options.model_root, options.name,
                                       version, net, config, optimizer.get()));
    net->to(device);
    RETURN_IF_ERROR(
        PlotTrainingLog(log_path, model_dir / "training_curves.png"));
    progress.Message(absl::StrFormat(
        "step %d: pixel error %.4f, Rand error %.4f (thinned %.4f), "
        "misclassified %.4f -> %s",
        step, metrics.at("pixel_error"), metrics.at("rand_error"),
        metrics.at("thinned_rand_error"), metrics.at("misclassified_fraction"),
        written.string()));
    if (out_of_time) break;
  }
  return absl::OkStatus();
}

}  // namespace unet
