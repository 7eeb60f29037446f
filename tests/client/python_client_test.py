"""End to end: the Python client against the real server with the shipped
model. Run by CTest with Debian's python3 and PYTHONPATH set to the generated
stubs and client/python; SERVER_BIN, MODEL_ROOT and TEST_DATA come from the
environment."""

import os
import socket
import subprocess
import tempfile
import time
import unittest

import cv2
import grpc
import numpy as np

import segmentation_client as sc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        port = free_port()
        cls.log = tempfile.NamedTemporaryFile(suffix=".log")
        cls.server = subprocess.Popen(
            [
                os.environ["SERVER_BIN"],
                "--model_root=" + os.environ["MODEL_ROOT"],
                "--device=cpu",
                "--address=127.0.0.1",
                f"--port={port}",
                "--metrics_address=127.0.0.1",
                f"--metrics_port={free_port()}",
                "--instances=1",
                "--cpu_threads=1",
                "--max_batch_size=4",
            ],
            stdout=cls.log,
            stderr=subprocess.STDOUT,
        )
        cls.client = sc.Client(f"127.0.0.1:{port}", timeout=60)
        give_up = time.monotonic() + 60
        while True:
            try:
                cls.client.info()
                break
            except sc.SegmentationError:
                if time.monotonic() > give_up or cls.server.poll() is not None:
                    cls.tearDownClass()
                    raise
                time.sleep(0.2)
        cls.image = cv2.imread(
            os.path.join(os.environ["TEST_DATA"], "isbi_train_0.png"),
            cv2.IMREAD_GRAYSCALE,
        )

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.terminate()
        cls.server.wait(timeout=60)

    def test_segments_an_array_as_it_segments_the_file(self):
        crop = self.image[:200, :300]
        result = self.client.segment(crop, request_id="crop")
        self.assertEqual(result.mask.shape, (200, 300))
        self.assertEqual(result.mask.dtype, np.uint8)
        self.assertLessEqual(int(result.mask.max()), 1)
        self.assertEqual(result.model, "unet")
        self.assertEqual(result.request_id, "crop")
        self.assertGreater(result.timing["inference_us"], 0)
        with tempfile.NamedTemporaryFile(suffix=".png") as file:
            cv2.imwrite(file.name, crop)
            from_file = self.client.segment(file.name)
        np.testing.assert_array_equal(from_file.mask, result.mask)
        tiled = self.client.segment(crop, tile=True)
        self.assertEqual(tiled.timing["tiles"], 1)
        np.testing.assert_array_equal(tiled.mask, result.mask)

    def test_probabilities_are_classes_by_height_by_width(self):
        result = self.client.segment(
            self.image[:64, :80].astype(np.float32) / 255, probabilities=True
        )
        self.assertEqual(result.probabilities.shape, (2, 64, 80))
        np.testing.assert_allclose(
            result.probabilities.sum(axis=0), 1.0, atol=1e-5
        )
        np.testing.assert_array_equal(
            result.probabilities.argmax(axis=0), result.mask
        )

    def test_bad_arrays_raise_invalid_argument(self):
        for bad in (
            np.zeros((8, 8), np.int64),  # no such pixel type
            np.zeros((8, 8, 8, 8), np.uint8),  # not an image
            np.zeros((32, 32, 7), np.uint8),  # the model takes 1 channel
            np.zeros((0, 16), np.uint8),  # empty
        ):
            with self.subTest(shape=bad.shape, dtype=str(bad.dtype)):
                with self.assertRaises(sc.InvalidArgumentError) as caught:
                    self.client.segment(bad)
                self.assertEqual(
                    caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT
                )

    def test_an_unknown_model_raises_not_found(self):
        with self.assertRaises(sc.NotFoundError) as caught:
            self.client.segment(self.image[:32, :32], model="nope")
        self.assertIn("nope", caught.exception.details)

    def test_segment_many_keeps_order_and_reports_failures_in_place(self):
        images = [self.image[:48 + i, :64] for i in range(6)]
        images.insert(3, np.zeros((4, 4), np.int64))
        results = list(
            self.client.segment_many(
                images, max_in_flight=4, return_exceptions=True
            )
        )
        self.assertEqual(len(results), 7)
        self.assertIsInstance(results[3], sc.InvalidArgumentError)
        for image, result in zip(images, results):
            if not isinstance(result, Exception):
                self.assertEqual(result.mask.shape, image.shape)
        batches = [r.timing["batch_size"] for r in results if not isinstance(r, Exception)]
        self.assertTrue(all(b >= 1 for b in batches))
        with self.assertRaises(sc.InvalidArgumentError):
            list(self.client.segment_many(images))

    def test_models_and_info(self):
        models = self.client.models()
        self.assertEqual([m.name for m in models], ["unet"])
        self.assertTrue(models[0].is_default)
        self.assertIn("AVAILABLE", [v.state for v in models[0].versions])
        info = self.client.info()
        self.assertEqual(info.class_names, ["cell", "membrane"])
        self.assertEqual(info.context_margin, 92)
        self.assertIn("pixel_error", info.training_metrics)

    def test_an_unreachable_server_raises_unavailable(self):
        with sc.Client(f"127.0.0.1:{free_port()}", timeout=5) as client:
            with self.assertRaises(sc.UnavailableError):
                client.models()


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class PythonClientTlsTest(unittest.TestCase):
    """tls= and token= against a server with TLS and bearer tokens."""

    TOKEN = "python-client-token-0123456789"

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        d = cls.dir.name
        ext = os.path.join(d, "san.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=ca",
                "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt")
        openssl("req", *ec, "-subj", "/CN=server", "-keyout", f"{d}/s.key",
                "-out", f"{d}/s.csr")
        openssl("x509", "-req", "-days", "2", "-in", f"{d}/s.csr", "-CA",
                f"{d}/ca.crt", "-CAkey", f"{d}/ca.key", "-CAcreateserial",
                "-extfile", ext, "-out", f"{d}/s.crt")
        with open(f"{d}/tokens", "w") as f:
            f.write(cls.TOKEN + "\n")
        with open(f"{d}/ca.crt", "rb") as f:
            cls.trust = grpc.ssl_channel_credentials(f.read())
        cls.port = free_port()
        cls.log = tempfile.NamedTemporaryFile(suffix=".log")
        cls.server = subprocess.Popen(
            [
                os.environ["SERVER_BIN"],
                "--model_root=" + os.environ["MODEL_ROOT"],
                "--device=cpu",
                "--address=127.0.0.1",
                f"--port={cls.port}",
                "--metrics_address=127.0.0.1",
                f"--metrics_port={free_port()}",
                "--instances=1",
                "--cpu_threads=1",
                "--max_batch_size=1",
                f"--tls_cert={d}/s.crt",
                f"--tls_key={d}/s.key",
                f"--auth_tokens_file={d}/tokens",
            ],
            stdout=cls.log,
            stderr=subprocess.STDOUT,
        )
        give_up = time.monotonic() + 60
        while True:
            # info() answers once the model is loaded (models() before).
            try:
                with cls.connect(token=cls.TOKEN) as client:
                    client.info()
                break
            except sc.SegmentationError:
                if time.monotonic() > give_up or cls.server.poll() is not None:
                    cls.tearDownClass()
                    raise
                time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        cls.server.terminate()
        cls.server.wait(timeout=60)
        cls.dir.cleanup()

    @classmethod
    def connect(cls, **kwargs):
        return sc.Client(f"127.0.0.1:{cls.port}", tls=cls.trust, timeout=10,
                         **kwargs)

    def test_the_right_token_segments(self):
        image = np.zeros((40, 50), np.uint8)
        with self.connect(token=self.TOKEN) as client:
            self.assertEqual(client.segment(image).mask.shape, (40, 50))

    def test_a_missing_or_wrong_token_is_unauthenticated(self):
        for token in (None, "wrong-token-0123456789abcdef"):
            with self.connect(token=token) as client:
                with self.assertRaises(sc.UnauthenticatedError):
                    client.models()

    def test_plaintext_is_refused(self):
        with sc.Client(f"127.0.0.1:{self.port}", token=self.TOKEN,
                       timeout=5) as client:
            with self.assertRaises(sc.UnavailableError):
                client.models()


if __name__ == "__main__":
    unittest.main()
