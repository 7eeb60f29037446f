# Generates C++ and gRPC code for proto/segmentation/v1/*.proto and the
# standard health-checking schema into the library `segmentation_proto`.
find_program(GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)

set(PROTO_ROOT ${CMAKE_SOURCE_DIR}/proto)
set(PROTO_OUT ${CMAKE_BINARY_DIR}/gen)
set(PROTO_FILES
  segmentation/v1/segmentation.proto
  segmentation/v1/model_config.proto
  grpc/health/v1/health.proto)
set(SERVICE_PROTO_FILES segmentation/v1/segmentation.proto
  grpc/health/v1/health.proto)

set(PROTO_SOURCES)
foreach(proto ${PROTO_FILES})
  string(REGEX REPLACE "\\.proto$" "" stem ${proto})
  set(outputs ${PROTO_OUT}/${stem}.pb.cc ${PROTO_OUT}/${stem}.pb.h)
  set(plugin_args)
  if(proto IN_LIST SERVICE_PROTO_FILES)
    list(APPEND outputs ${PROTO_OUT}/${stem}.grpc.pb.cc
      ${PROTO_OUT}/${stem}.grpc.pb.h)
    set(plugin_args --grpc_out=${PROTO_OUT}
      --plugin=protoc-gen-grpc=${GRPC_CPP_PLUGIN})
  endif()
  add_custom_command(
    OUTPUT ${outputs}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PROTO_OUT}
    COMMAND protobuf::protoc --proto_path=${PROTO_ROOT}
      --cpp_out=${PROTO_OUT} ${plugin_args} ${PROTO_ROOT}/${proto}
    DEPENDS ${PROTO_ROOT}/${proto}
    COMMENT "protoc ${proto}")
  list(APPEND PROTO_SOURCES ${outputs})
endforeach()

add_library(segmentation_proto ${PROTO_SOURCES})
target_include_directories(segmentation_proto PUBLIC ${PROTO_OUT})
target_link_libraries(segmentation_proto PUBLIC protobuf::libprotobuf
  gRPC::grpc++)
