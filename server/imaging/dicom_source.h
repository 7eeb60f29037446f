#ifndef SERVER_IMAGING_DICOM_SOURCE_H_
#define SERVER_IMAGING_DICOM_SOURCE_H_

// What a DICOM Segmentation needs of its source image: its header (patient,
// study, frame of reference, SOP instance, geometry), without the pixels.
// Only dicom_decoder.cc and dicom_seg.cc see DCMTK through it; elsewhere it
// is an opaque shared_ptr<const DicomSource>.

#include <dcmtk/dcmdata/dcdatset.h>

#include <memory>

namespace unet {

struct DicomSource {
  std::unique_ptr<DcmDataset> header;
  int frames = 1;
};

}  // namespace unet

#endif  // SERVER_IMAGING_DICOM_SOURCE_H_
