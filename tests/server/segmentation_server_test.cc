// End to end: starts the real segmentation_server binary on a loopback port
// with a LibTorch model and a TorchScript export, and talks to it as
// integrators do (tests/client/ drives it with the `segment` CLI).

#include <dcmtk/dcmseg/segdoc.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <opencv2/imgcodecs.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/cpu_threads.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "model/model_writer.h"
#include "segmentation/v1/segmentation.grpc.pb.h"
#include "tests/server/imaging/dicom_fixtures.h"
#include "tests/server/server_process.h"

namespace unet {
namespace {

namespace fs = std::filesystem;
using segmentation::v1::GetModelInfoRequest;
using segmentation::v1::ModelInfo;
using segmentation::v1::Segmentation;
using segmentation::v1::SegmentRequest;
using segmentation::v1::SegmentResponse;
using ::testing::HasSubstr;

constexpr int64_t kMaxPixels = 1000 * 1000;

cv::Mat DecodePng(const std::string& bytes) {
  return cv::imdecode(
      cv::Mat(1, bytes.size(), CV_8U, const_cast<char*>(bytes.data())),
      cv::IMREAD_UNCHANGED);
}

SegmentRequest ImageRequest(const std::string& encoded) {
  SegmentRequest request;
  request.set_request_id("test-1");
  request.mutable_image()->set_encoded(encoded);
  return request;
}

SegmentRequest RawRequest(int width, int height, int channels,
                          segmentation::v1::PixelType type, size_t bytes) {
  SegmentRequest request;
  auto* raw = request.mutable_image()->mutable_raw();
  raw->set_width(width);
  raw->set_height(height);
  raw->set_channels(channels);
  raw->set_pixel_type(type);
  std::string data(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) data[i] = static_cast<char>(i * 7);
  raw->set_data(data);
  request.set_mask_encoding(segmentation::v1::RAW);
  return request;
}

class SegmentationServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const fs::path root = fs::path(::testing::TempDir()) / "e2e_models";
    fs::remove_all(root);
    fs::create_directories(root);
    torch::manual_seed(0);
    UNetOptions options;
    options.channels = {2, 4, 8, 16, 32};
    UNet net(options);
    ASSERT_TRUE(WriteModelVersion(root, "unet", 1, net,
                                  DefaultModelConfig(1, 2, {2, 4, 8, 16, 32}))
                    .ok());
    const std::string export_command = absl::StrCat(
        UNET_PYTHON " " UNET_SOURCE_DIR "/model/export_torchscript.py",
        " --model_root ", root.string(),
        " --name scripted --width 2 --seed 1 > /dev/null");
    ASSERT_EQ(std::system(export_command.c_str()), 0);
    const std::string export_retain_dim = absl::StrCat(
        UNET_PYTHON " " UNET_SOURCE_DIR "/model/export_torchscript.py",
        " --model_root ", root.string(),
        " --name retain_dim --retain_dim --width 2 --seed 2 > /dev/null");
    ASSERT_EQ(std::system(export_retain_dim.c_str()), 0);
    auto server = testing::ServerProcess::Start(
        {"--model_root=" + root.string(), "--default_model=unet",
         "--device=cpu", absl::StrCat("--max_pixels=", kMaxPixels)},
        "e2e_server.log");
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }

  static void TearDownTestSuite() {
    if (server_ == nullptr) return;  // SetUpTestSuite failed and said why
    EXPECT_EQ(server_->Stop(SIGTERM), 0)
        << "server did not exit cleanly on SIGTERM:\n"
        << server_->log();
    delete server_;
  }

  static grpc::Status Segment(const SegmentRequest& request,
                              SegmentResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(60));
    return Segmentation::NewStub(server_->channel())
        ->Segment(&context, request, response);
  }

  static testing::ServerProcess* server_;
};

testing::ServerProcess* SegmentationServerTest::server_ = nullptr;

const fs::path kTrainImage = UNET_TEST_DATA_DIR "/isbi_train_0.png";
const fs::path kUnlabeledImage = UNET_TEST_DATA_DIR "/isbi_unlabeled_0.png";

TEST_F(SegmentationServerTest, SegmentsARealEmImage) {
  SegmentResponse response;
  const grpc::Status status =
      Segment(ImageRequest(testing::ReadFile(kTrainImage)), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.request_id(), "test-1");
  EXPECT_EQ(response.model(), "unet");
  EXPECT_EQ(response.model_version(), 1);
  EXPECT_EQ(response.mask().width(), 512u);
  EXPECT_EQ(response.mask().height(), 512u);
  const cv::Mat mask = DecodePng(response.mask().data());
  ASSERT_EQ(mask.type(), CV_8UC1);
  EXPECT_EQ(mask.size(), cv::Size(512, 512));
  double max_class = 0;
  cv::minMaxLoc(mask, nullptr, &max_class);
  EXPECT_LE(max_class, 1);  // two classes: 0 and 1
  EXPECT_GT(response.timing().inference_us(), 0);
  EXPECT_GT(response.timing().preprocess_us(), 0);
  EXPECT_EQ(response.timing().batch_size(), 1);
}

// A DICOM file of the same pixels gives the mask the PNG gives: its
// intensities are the PNG's when the model maps nothing (dicom_input unset).
TEST_F(SegmentationServerTest, ADicomSliceSegmentsAsThePngOfItsPixels) {
  const cv::Mat slice = cv::imread(kTrainImage, cv::IMREAD_GRAYSCALE);
  const cv::Mat crop = slice(cv::Rect(40, 60, 200, 150)).clone();
  testing::DicomSpec spec =
      testing::EightBitSlice(crop.rows, crop.cols, crop.data);
  std::vector<uchar> png;
  cv::imencode(".png", crop, png);
  for (auto encoding :
       {testing::DicomEncoding::kExplicitLittle, testing::DicomEncoding::kRle,
        testing::DicomEncoding::kJpegLsLossless}) {
    spec.encoding = encoding;
    SegmentResponse from_dicom, from_png;
    ASSERT_TRUE(
        Segment(ImageRequest(testing::MakeDicom(spec)), &from_dicom).ok());
    ASSERT_TRUE(
        Segment(ImageRequest(std::string(png.begin(), png.end())), &from_png)
            .ok());
    const cv::Mat a = DecodePng(from_dicom.mask().data());
    const cv::Mat b = DecodePng(from_png.mask().data());
    ASSERT_EQ(a.size(), crop.size());
    EXPECT_EQ(cv::countNonZero(a != b), 0);
  }
  // A multi-frame object: one mask per frame, in frame order, its frames
  // batched like any requests.
  spec.frames = 3;
  spec.values.clear();
  for (int f = 0; f < 3; ++f) {
    const cv::Mat frame = f == 1 ? cv::Mat(255 - crop) : crop;
    spec.values.insert(spec.values.end(), frame.begin<uint8_t>(),
                       frame.end<uint8_t>());
  }
  spec.encoding = testing::DicomEncoding::kRle;
  SegmentResponse frames, inverted;
  ASSERT_TRUE(Segment(ImageRequest(testing::MakeDicom(spec)), &frames).ok());
  ASSERT_EQ(frames.frame_masks_size(), 3);
  EXPECT_FALSE(frames.has_mask());
  std::vector<uchar> inverted_png;
  cv::imencode(".png", cv::Mat(255 - crop), inverted_png);
  ASSERT_TRUE(Segment(ImageRequest(std::string(inverted_png.begin(),
                                               inverted_png.end())),
                      &inverted)
                  .ok());
  SegmentResponse from_png;
  ASSERT_TRUE(
      Segment(ImageRequest(std::string(png.begin(), png.end())), &from_png)
          .ok());
  const cv::Mat expected[3] = {DecodePng(from_png.mask().data()),
                               DecodePng(inverted.mask().data()),
                               DecodePng(from_png.mask().data())};
  for (int f = 0; f < 3; ++f) {
    const cv::Mat mask = DecodePng(frames.frame_masks(f).data());
    ASSERT_EQ(mask.size(), crop.size()) << "frame " << f;
    EXPECT_EQ(cv::countNonZero(mask != expected[f]), 0) << "frame " << f;
  }
  EXPECT_GT(frames.timing().inference_us(), 0);

  // What the service cannot take gets a precise status.
  SegmentResponse response;
  SegmentRequest with_probabilities = ImageRequest(testing::MakeDicom(spec));
  with_probabilities.set_include_probabilities(true);
  EXPECT_EQ(Segment(with_probabilities, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  spec.frames = 1;
  spec.encoding = testing::DicomEncoding::kJpeg2000;
  EXPECT_EQ(
      Segment(ImageRequest(testing::MakeDicom(spec)), &response).error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
}

// DICOM SEG out: valid by dciodvfy, readable by DCMTK and pydicom,
// referencing the source, and its frames the masks of the PNG path.
TEST_F(SegmentationServerTest, AnswersADicomImageWithAValidSegmentation) {
  const cv::Mat slice = cv::imread(kTrainImage, cv::IMREAD_GRAYSCALE);
  const cv::Mat crop = slice(cv::Rect(100, 50, 120, 96)).clone();
  testing::DicomSpec spec =
      testing::EightBitSlice(crop.rows, crop.cols, crop.data);
  spec.geometry = true;
  const cv::Mat inverted = 255 - crop;  // the second frame
  spec.values.insert(spec.values.end(), inverted.begin<uint8_t>(),
                     inverted.end<uint8_t>());
  for (int frames : {1, 2, 3}) {
    // The third: one frame of a source without patient geometry.
    spec.geometry = frames < 3;
    if (frames == 3) frames = 1;
    spec.frames = frames;
    spec.values.resize(size_t(crop.total()) * frames);
    const std::string source = testing::MakeDicom(spec);
    SegmentRequest request = ImageRequest(source);
    request.set_mask_encoding(segmentation::v1::DICOM_SEG);
    SegmentResponse response;
    const grpc::Status status = Segment(request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.mask().encoding(), segmentation::v1::DICOM_SEG);
    EXPECT_EQ(response.frame_masks_size(), 0);
    const std::filesystem::path path =
        std::filesystem::path(::testing::TempDir()) /
        absl::StrCat("answer_", frames, spec.geometry, ".dcm");
    std::ofstream(path, std::ios::binary) << response.mask().data();

    // DCMTK reads it back as a Segmentation.
    DcmSegmentation* loaded = nullptr;
    ASSERT_TRUE(
        DcmSegmentation::loadFile(path.string().c_str(), loaded).good());
    const std::unique_ptr<DcmSegmentation> owned(loaded);
    EXPECT_EQ(loaded->getNumberOfSegments(), 2u);
    EXPECT_EQ(loaded->getNumberOfFrames(), size_t(2 * frames));

    // David Clunie's validator: no errors.
    const std::string report =
        absl::StrCat(::testing::TempDir(), "/dciodvfy_", frames, ".txt");
    std::system(absl::StrCat("dciodvfy ", path.string(), " > ", report, " 2>&1")
                    .c_str());
    const std::string verdict = testing::ReadFile(report);
    // It names the IOD it checked: dciodvfy ran.
    ASSERT_NE(verdict.find("Segmentation"), std::string::npos) << verdict;
    EXPECT_EQ(verdict.find("Error"), std::string::npos) << verdict;

    // pydicom reads it, and says what it holds: per segment, then frame.
    const std::string dump =
        absl::StrCat(::testing::TempDir(), "/pydicom_", frames, ".txt");
    const std::string script = absl::StrCat(
        "import pydicom, sys\n"
        "seg = pydicom.dcmread(sys.argv[1])\n"
        "src = pydicom.dcmread(sys.argv[2])\n"
        "print(seg.Modality, seg.SOPClassUID == "
        "'1.2.840.10008.5.1.4.1.1.66.4')\n"
        "print(seg.StudyInstanceUID == src.StudyInstanceUID,"
        " seg.PatientID == src.PatientID,"
        " seg.SeriesInstanceUID != src.SeriesInstanceUID,"
        " seg.get('FrameOfReferenceUID') == src.get('FrameOfReferenceUID'))\n"
        "print(len(seg.SegmentSequence), seg.NumberOfFrames)\n"
        "print(seg.SegmentSequence[0].SegmentAlgorithmType)\n"
        "refs = {f.DerivationImageSequence[0].SourceImageSequence[0]"
        ".ReferencedSOPInstanceUID for f in "
        "seg.PerFrameFunctionalGroupsSequence}\n"
        "print(refs == {src.SOPInstanceUID})\n"
        "pixels = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)\n"
        "open(sys.argv[3], 'wb').write(pixels.astype('uint8').tobytes())\n");
    const std::string script_path =
        absl::StrCat(::testing::TempDir(), "/read_seg.py");
    std::ofstream(script_path) << script;
    const std::string source_path =
        absl::StrCat(::testing::TempDir(), "/source_", frames, ".dcm");
    std::ofstream(source_path, std::ios::binary) << source;
    const std::string pixels_path =
        absl::StrCat(::testing::TempDir(), "/seg_pixels_", frames, ".raw");
    ASSERT_EQ(std::system(absl::StrCat("/usr/bin/python3 ", script_path, " ",
                                       path.string(), " ", source_path, " ",
                                       pixels_path, " > ", dump, " 2>&1")
                              .c_str()),
              0)
        << testing::ReadFile(dump);
    const int classes = 2;  // the test model's; neither is "background"
    EXPECT_EQ(testing::ReadFile(dump),
              absl::StrCat("SEG True\nTrue True True True\n", classes, " ",
                           classes * frames, "\nAUTOMATIC\nTrue\n"));

    // Its frames, segment by segment, are the PNG path's masks.
    const std::string seg_pixels = testing::ReadFile(pixels_path);
    ASSERT_EQ(seg_pixels.size(), crop.total() * classes * frames);
    for (int f = 0; f < frames; ++f) {
      std::vector<uchar> png;
      cv::imencode(".png", f == 0 ? crop : cv::Mat(255 - crop), png);
      SegmentResponse expected;
      ASSERT_TRUE(
          Segment(ImageRequest(std::string(png.begin(), png.end())), &expected)
              .ok());
      const cv::Mat mask = DecodePng(expected.mask().data());
      for (int c = 0; c < classes; ++c) {
        const cv::Mat frame(crop.rows, crop.cols, CV_8U,
                            const_cast<char*>(seg_pixels.data()) +
                                (c * frames + f) * crop.total());
        EXPECT_EQ(cv::countNonZero(frame != (mask == c) / 255), 0)
            << "segment " << c + 1 << " frame " << f + 1;
      }
    }
  }
  // A PNG cannot be answered with a Segmentation.
  std::vector<uchar> png;
  cv::imencode(".png", crop, png);
  SegmentRequest request = ImageRequest(std::string(png.begin(), png.end()));
  request.set_mask_encoding(segmentation::v1::DICOM_SEG);
  SegmentResponse response;
  EXPECT_EQ(Segment(request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(SegmentationServerTest, ServesTheTorchScriptExport) {
  SegmentRequest request = ImageRequest(testing::ReadFile(kUnlabeledImage));
  request.set_model("scripted");
  SegmentResponse response;
  const grpc::Status status = Segment(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.model(), "scripted");
  EXPECT_EQ(DecodePng(response.mask().data()).size(), cv::Size(512, 512));
}

TEST_F(SegmentationServerTest, OddSizesGiveMasksOfExactlyTheInputSize) {
  using segmentation::v1::PIXEL_TYPE_FLOAT32;
  using segmentation::v1::PIXEL_TYPE_UINT16;
  using segmentation::v1::PIXEL_TYPE_UINT8;
  const struct {
    int width, height;
    segmentation::v1::PixelType type;
    size_t pixel_bytes;
  } cases[] = {{517, 333, PIXEL_TYPE_UINT8, 1},
               {1, 1, PIXEL_TYPE_UINT8, 1},
               {333, 517, PIXEL_TYPE_UINT16, 2},
               {7, 3, PIXEL_TYPE_FLOAT32, 4}};
  for (const auto& c : cases) {
    SegmentResponse response;
    const grpc::Status status =
        Segment(RawRequest(c.width, c.height, 1, c.type,
                           c.width * c.height * c.pixel_bytes),
                &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.mask().width(), static_cast<uint32_t>(c.width));
    EXPECT_EQ(response.mask().height(), static_cast<uint32_t>(c.height));
    EXPECT_EQ(response.mask().encoding(), segmentation::v1::RAW);
    EXPECT_EQ(response.mask().data().size(),
              static_cast<size_t>(c.width * c.height));
  }
}

TEST_F(SegmentationServerTest, ReturnsProbabilitiesThatSumToOne) {
  SegmentRequest request =
      RawRequest(20, 10, 1, segmentation::v1::PIXEL_TYPE_UINT8, 200);
  request.set_include_probabilities(true);
  SegmentResponse response;
  ASSERT_TRUE(Segment(request, &response).ok());
  const auto& p = response.probabilities();
  EXPECT_EQ(p.num_classes(), 2u);
  ASSERT_EQ(p.data().size(), 2u * 200 * sizeof(float));
  const float* values = reinterpret_cast<const float*>(p.data().data());
  for (int i = 0; i < 200; ++i) {
    EXPECT_NEAR(values[i] + values[200 + i], 1.0f, 1e-5);
    const int mask_class = response.mask().data()[i];
    EXPECT_GE(values[mask_class * 200 + i], 0.5f);
  }
}

// OVERLAP_TILE cuts the image into tiles on the network's pooling grid,
// so that it computes what one pass over the whole image computes.
TEST_F(SegmentationServerTest, OverlapTileAgreesWithTheWholeImagePass) {
  constexpr int kHeight = 500, kWidth = 600;  // probabilities under 4 MB
  SegmentRequest whole = RawRequest(
      kWidth, kHeight, 1, segmentation::v1::PIXEL_TYPE_UINT8, kWidth * kHeight);
  whole.set_include_probabilities(true);
  SegmentRequest tiled = whole;
  tiled.set_resize_mode(SegmentRequest::OVERLAP_TILE);
  SegmentResponse whole_response, tiled_response;
  const grpc::Status whole_status = Segment(whole, &whole_response);
  ASSERT_TRUE(whole_status.ok()) << whole_status.error_message();
  const grpc::Status status = Segment(tiled, &tiled_response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(whole_response.timing().tiles(), 0);
  EXPECT_EQ(tiled_response.timing().tiles(), 4);  // 572-pixel tiles: 2 x 2
  ASSERT_EQ(tiled_response.mask().data().size(), size_t{kWidth} * kHeight);
  ASSERT_EQ(tiled_response.probabilities().data().size(),
            whole_response.probabilities().data().size());
  const auto* p = reinterpret_cast<const float*>(
      whole_response.probabilities().data().data());
  const auto* q = reinterpret_cast<const float*>(
      tiled_response.probabilities().data().data());
  const int plane = kWidth * kHeight;
  float largest_difference = 0;
  int masks_differ = 0;
  for (int i = 0; i < plane; ++i) {
    largest_difference = std::max(largest_difference, std::abs(p[i] - q[i]));
    // Classes may swap only where the two are tied to rounding.
    masks_differ +=
        whole_response.mask().data()[i] != tiled_response.mask().data()[i] &&
        std::abs(p[i] - p[plane + i]) > 1e-4;
  }
  EXPECT_LE(largest_difference, 1e-5);
  EXPECT_EQ(masks_differ, 0);
}

// Test-time augmentation segments the 8 views of the image and averages
// them: a mask of the image's size, probabilities that still sum to one.
TEST_F(SegmentationServerTest, TestTimeAugmentationAveragesEightViews) {
  SegmentRequest request =
      RawRequest(37, 23, 1, segmentation::v1::PIXEL_TYPE_UINT8, 37 * 23);
  request.set_test_time_augmentation(true);
  request.set_include_probabilities(true);
  SegmentResponse response;
  const grpc::Status status = Segment(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.timing().tiles(), 8);
  ASSERT_EQ(response.mask().data().size(), 37u * 23);
  const auto* p =
      reinterpret_cast<const float*>(response.probabilities().data().data());
  for (int i = 0; i < 37 * 23; ++i) {
    ASSERT_NEAR(p[i] + p[37 * 23 + i], 1.0f, 1e-5);
  }
}

// An image whose single pass would exceed the pass budget is tiled by the
// server itself: the same result, memory bounded by the tiles.
TEST_F(SegmentationServerTest, AnImageTooLargeForOnePassIsTiled) {
  const SegmentRequest request =
      RawRequest(50000, 20, 1, segmentation::v1::PIXEL_TYPE_UINT8, 50000 * 20);
  SegmentResponse response;
  const grpc::Status status = Segment(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.mask().width(), 50000u);
  EXPECT_EQ(response.mask().height(), 20u);
  EXPECT_EQ(response.timing().tiles(), 131);  // 1 + ceil((50000 - 388) / 384)
  EXPECT_GE(response.timing().mean_tile_batch_size(), 1.0);
}

// On CPUs an image larger than about 640 x 640 is tiled without being asked
// (faster there than one pass, docs/reliability.md); a smaller one is not.
TEST_F(SegmentationServerTest, LargerImagesAreTiledOnCpusByDefault) {
  SegmentResponse response;
  grpc::Status status = Segment(
      RawRequest(800, 700, 1, segmentation::v1::PIXEL_TYPE_UINT8, 800 * 700),
      &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.timing().tiles(), 6);  // 572-pixel tiles: 2 x 3
  EXPECT_EQ(response.mask().width(), 800u);
  EXPECT_EQ(response.mask().height(), 700u);
  status = Segment(
      RawRequest(640, 640, 1, segmentation::v1::PIXEL_TYPE_UINT8, 640 * 640),
      &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.timing().tiles(), 0);
}

// Tiled requests hold their image and mask outside the queue's byte bound:
// past --max_tiled_requests at once, more are refused at once.
TEST_F(SegmentationServerTest, TiledRequestsAtOnceAreBounded) {
  const fs::path root = fs::path(::testing::TempDir()) / "e2e_models";
  auto server = testing::ServerProcess::Start(
      {"--model_root=" + root.string(), "--default_model=unet", "--device=cpu",
       "--instances=1", "--cpu_threads=1", "--max_batch_size=1",
       "--max_pixels=16000000", "--max_tiled_requests=1"},
      "tiled_limit_server.log");
  ASSERT_TRUE(server.ok()) << server.status();
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(-1);  // the 16 MB mask
  auto stub = Segmentation::NewStub(grpc::CreateCustomChannel(
      (*server)->address(), grpc::InsecureChannelCredentials(), arguments));
  SegmentRequest large = RawRequest(
      4000, 4000, 1, segmentation::v1::PIXEL_TYPE_UINT8, 4000 * 4000);
  large.set_resize_mode(SegmentRequest::OVERLAP_TILE);
  SegmentRequest small =
      RawRequest(64, 64, 1, segmentation::v1::PIXEL_TYPE_UINT8, 64 * 64);
  small.set_resize_mode(SegmentRequest::OVERLAP_TILE);
  auto first = std::async(std::launch::async, [&] {
    grpc::ClientContext context;
    SegmentResponse response;
    return stub->Segment(&context, large, &response);
  });
  absl::SleepFor(absl::Seconds(1));  // the large one is being tiled
  grpc::ClientContext context;
  SegmentResponse response;
  const grpc::Status refused = stub->Segment(&context, small, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << refused.error_message();
  const grpc::Status first_status = first.get();
  EXPECT_TRUE(first_status.ok()) << first_status.error_message();
  grpc::ClientContext again;
  EXPECT_TRUE(stub->Segment(&again, small, &response).ok());  // room again
}

// A model exported with the seed's retain_dim (its output stretched over its
// input) is served as the seed runs it: a valid-size image goes in as it is,
// without the context margin, and the probabilities are PyTorch's own.
TEST_F(SegmentationServerTest, ServesRetainDimModelsAsPyTorchRunsThem) {
  constexpr int kHeight = 188, kWidth = 204;  // valid input sides
  cv::Mat image(kHeight, kWidth, CV_32FC1);
  cv::randu(image, 0.0f, 1.0f);
  SegmentRequest request;
  request.set_model("retain_dim");
  request.set_include_probabilities(true);
  auto* raw = request.mutable_image()->mutable_raw();
  raw->set_width(kWidth);
  raw->set_height(kHeight);
  raw->set_channels(1);
  raw->set_pixel_type(segmentation::v1::PIXEL_TYPE_FLOAT32);
  raw->set_data(image.data, image.total() * sizeof(float));
  SegmentResponse response;
  const grpc::Status status = Segment(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();

  const fs::path dir = fs::path(::testing::TempDir());
  const fs::path image_file = dir / "retain_dim_image.f32";
  const fs::path expected_file = dir / "retain_dim_expected.f32";
  std::ofstream(image_file, std::ios::binary)
      .write(reinterpret_cast<const char*>(image.data),
             image.total() * sizeof(float));
  const fs::path model_pt = fs::path(::testing::TempDir()) / "e2e_models" /
                            "retain_dim" / "1" / "model.pt";
  const std::string reference = absl::StrCat(
      UNET_PYTHON " " UNET_SOURCE_DIR "/tests/server/torchscript_reference.py ",
      model_pt.string(), " ", image_file.string(), " ", kHeight, " ", kWidth,
      " ", expected_file.string());
  ASSERT_EQ(std::system(reference.c_str()), 0);
  const std::string expected = testing::ReadFile(expected_file);
  const std::string& served = response.probabilities().data();
  ASSERT_EQ(served.size(), size_t{2} * kHeight * kWidth * sizeof(float));
  ASSERT_EQ(expected.size(), served.size());
  const auto* want = reinterpret_cast<const float*>(expected.data());
  const auto* got = reinterpret_cast<const float*>(served.data());
  float max_difference = 0;
  for (size_t i = 0; i < served.size() / sizeof(float); ++i) {
    max_difference = std::max(max_difference, std::abs(want[i] - got[i]));
  }
  EXPECT_LE(max_difference, 1e-5f);
}

TEST_F(SegmentationServerTest, HealthSaysServing) {
  auto health = grpc::health::v1::Health::NewStub(server_->channel());
  for (const char* service : {"", "segmentation.v1.Segmentation"}) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(health->Check(&context, request, &response).ok()) << service;
    EXPECT_EQ(response.status(),
              grpc::health::v1::HealthCheckResponse::SERVING);
  }
}

TEST_F(SegmentationServerTest, DescribesTheModel) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  ModelInfo info;
  ASSERT_TRUE(Segmentation::NewStub(server_->channel())
                  ->GetModelInfo(&context, GetModelInfoRequest(), &info)
                  .ok());
  EXPECT_EQ(info.name(), "unet");
  EXPECT_EQ(info.version(), 1);
  EXPECT_EQ(info.format(), "libtorch");
  EXPECT_EQ(info.input_channels(), 1u);
  EXPECT_EQ(info.num_classes(), 2u);
  EXPECT_EQ(info.class_names_size(), 2);
  EXPECT_EQ(info.valid_input_sizes().minimum(), 188u);
  EXPECT_EQ(info.valid_input_sizes().step(), 16u);
  EXPECT_EQ(info.context_margin(), 92u);
  EXPECT_EQ(info.device(), "cpu");
  ASSERT_EQ(info.versions_size(), 1);
  EXPECT_EQ(info.versions(0).version(), 1);
  EXPECT_EQ(info.versions(0).state(),
            segmentation::v1::VersionStatus::AVAILABLE);
  // No plan flags: the server timed its candidates on this CPU.
  const auto& plan = info.execution_plan();
  EXPECT_EQ(plan.chosen_by(), "measured");
  EXPECT_GE(plan.instances_per_device(), 1u);
  EXPECT_GE(plan.threads_per_instance(), 1u);
  EXPECT_LE(plan.instances_per_device() * plan.threads_per_instance(),
            static_cast<unsigned>(UsableCpus()));
  EXPECT_EQ(plan.shared_cpus(),
            plan.instances_per_device() * plan.threads_per_instance());
  EXPECT_GE(plan.max_batch_size(), 1u);
  EXPECT_LE(plan.max_batch_size(), 2u);
  EXPECT_GT(plan.measured_images_per_second(), 0);
  EXPECT_GT(plan.measured_latency_ms(), 0);
  EXPECT_THAT(server_->log(), HasSubstr("event=cpu_plan"));

  grpc::ClientContext missing_context;
  missing_context.set_deadline(std::chrono::system_clock::now() +
                               std::chrono::seconds(10));
  GetModelInfoRequest missing;
  missing.set_model("nope");
  EXPECT_EQ(Segmentation::NewStub(server_->channel())
                ->GetModelInfo(&missing_context, missing, &info)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST(ExecutionPlanTest, FlagsFixThePlan) {
  auto server = testing::ServerProcess::Start(
      {"--model_root=" UNET_SOURCE_DIR "/model/repository", "--device=cpu",
       "--instances=2", "--cpu_threads=1"},
      "fixed_plan_server.log");
  ASSERT_TRUE(server.ok()) << server.status();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  ModelInfo info;
  ASSERT_TRUE(Segmentation::NewStub((*server)->channel())
                  ->GetModelInfo(&context, GetModelInfoRequest(), &info)
                  .ok());
  const auto& plan = info.execution_plan();
  EXPECT_EQ(plan.chosen_by(), "flags");
  EXPECT_EQ(plan.instances_per_device(), 2u);
  EXPECT_EQ(plan.threads_per_instance(), 1u);
  EXPECT_EQ(plan.max_batch_size(), 1u);  // the CPU rule
  EXPECT_EQ(plan.measured_images_per_second(), 0);
  EXPECT_EQ(plan.shared_cpus(), 0u);
  EXPECT_THAT((*server)->log(), ::testing::Not(HasSubstr("event=planning")));
  EXPECT_EQ((*server)->Stop(SIGTERM), 0);
}

// With batches of two and a long delay for company, a request that no
// other follows is still run at once: nothing is on its way to join it.
TEST(BatchingTest, ALoneRequestDoesNotWaitForCompany) {
  auto server = testing::ServerProcess::Start(
      {"--model_root=" UNET_SOURCE_DIR "/model/repository", "--device=cpu",
       "--instances=1", "--cpu_threads=1", "--max_batch_size=2",
       "--max_queue_delay_us=5000000"},
      "batching_server.log");
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string image = testing::ReadFile(kTrainImage);
  for (int call = 0; call < 2; ++call) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(60));
    SegmentResponse response;
    ASSERT_TRUE(Segmentation::NewStub((*server)->channel())
                    ->Segment(&context, ImageRequest(image), &response)
                    .ok());
    EXPECT_LT(response.timing().queue_us(), 1000000);
    EXPECT_EQ(response.timing().batch_size(), 1);
  }
  EXPECT_EQ((*server)->Stop(SIGTERM), 0);
}

TEST_F(SegmentationServerTest, ServesConcurrentCallers) {
  const std::string image = testing::ReadFile(kTrainImage);
  std::vector<std::future<grpc::Status>> calls;
  for (int i = 0; i < 8; ++i) {
    calls.push_back(std::async(std::launch::async, [&image] {
      SegmentResponse response;
      return Segment(ImageRequest(image), &response);
    }));
  }
  for (auto& call : calls) EXPECT_TRUE(call.get().ok());
}

struct BadRequestCase {
  const char* name;
  std::function<SegmentRequest()> request;
  grpc::StatusCode code;
  const char* message;
};

void PrintTo(const BadRequestCase& c, std::ostream* os) { *os << c.name; }

class BadRequestTest : public SegmentationServerTest,
                       public ::testing::WithParamInterface<BadRequestCase> {};

TEST_P(BadRequestTest, GetsAClearStatusAndTheServerStaysUp) {
  SegmentResponse response;
  const grpc::Status status = Segment(GetParam().request(), &response);
  EXPECT_EQ(status.error_code(), GetParam().code) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(GetParam().message));
  // Nothing was lost: the next good request is served.
  SegmentResponse good;
  EXPECT_TRUE(
      Segment(RawRequest(4, 4, 1, segmentation::v1::PIXEL_TYPE_UINT8, 16),
              &good)
          .ok());
}

std::string EncodedRgb() {
  std::vector<uint8_t> png;
  cv::imencode(".png", cv::Mat(16, 16, CV_8UC3, cv::Scalar(1, 2, 3)), png);
  return std::string(png.begin(), png.end());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadRequestTest,
    ::testing::Values(
        BadRequestCase{"EmptyBytes", [] { return ImageRequest(""); },
                       grpc::StatusCode::INVALID_ARGUMENT, "empty"},
        BadRequestCase{"UndecodableBytes",
                       [] { return ImageRequest("\x89PNG\r\n\x1a\n garbage"); },
                       grpc::StatusCode::INVALID_ARGUMENT,
                       "PNG file ends at byte 16 before its IEND chunk"},
        BadRequestCase{"FormatOffTheAllowList",
                       [] { return ImageRequest("GIF89a garbage"); },
                       grpc::StatusCode::INVALID_ARGUMENT,
                       "GIF is not accepted"},
        BadRequestCase{"NoImage", [] { return SegmentRequest(); },
                       grpc::StatusCode::INVALID_ARGUMENT, "no image"},
        BadRequestCase{"ChannelsTheModelDoesNotTake",
                       [] { return ImageRequest(EncodedRgb()); },
                       grpc::StatusCode::INVALID_ARGUMENT, "channels"},
        BadRequestCase{"RawSizeMismatch",
                       [] {
                         return RawRequest(
                             10, 10, 1, segmentation::v1::PIXEL_TYPE_UINT8, 99);
                       },
                       grpc::StatusCode::INVALID_ARGUMENT, "bytes"},
        BadRequestCase{"TooManyPixels",
                       [] {
                         return RawRequest(1001, 1000, 1,
                                           segmentation::v1::PIXEL_TYPE_UINT8,
                                           1001 * 1000);
                       },
                       grpc::StatusCode::INVALID_ARGUMENT, "at most"},
        BadRequestCase{"ThinImageForAModelThatCannotBeTiled",
                       [] {
                         auto r = RawRequest(50000, 20, 1,
                                             segmentation::v1::PIXEL_TYPE_UINT8,
                                             50000 * 20);
                         r.set_model("retain_dim");
                         return r;
                       },
                       grpc::StatusCode::INVALID_ARGUMENT, "cannot be tiled"},
        BadRequestCase{"UnknownModel",
                       [] {
                         auto r = RawRequest(
                             4, 4, 1, segmentation::v1::PIXEL_TYPE_UINT8, 16);
                         r.set_model("nope");
                         return r;
                       },
                       grpc::StatusCode::NOT_FOUND, "nope"},
        BadRequestCase{"UnknownVersion",
                       [] {
                         auto r = RawRequest(
                             4, 4, 1, segmentation::v1::PIXEL_TYPE_UINT8, 16);
                         r.set_model_version(42);
                         return r;
                       },
                       grpc::StatusCode::NOT_FOUND, "42"},
        BadRequestCase{"OverlapTileOfARetainDimModel",
                       [] {
                         auto r = RawRequest(
                             4, 4, 1, segmentation::v1::PIXEL_TYPE_UINT8, 16);
                         r.set_model("retain_dim");
                         r.set_resize_mode(SegmentRequest::OVERLAP_TILE);
                         return r;
                       },
                       grpc::StatusCode::INVALID_ARGUMENT, "retain_dim"},
        BadRequestCase{"TestTimeAugmentationOfARetainDimModel",
                       [] {
                         auto r = RawRequest(
                             4, 4, 1, segmentation::v1::PIXEL_TYPE_UINT8, 16);
                         r.set_model("retain_dim");
                         r.set_test_time_augmentation(true);
                         return r;
                       },
                       grpc::StatusCode::INVALID_ARGUMENT, "retain_dim"}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace unet
