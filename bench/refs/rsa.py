"""RSA-4096 private operations (PSS sign) per second, on 1 and on 2 threads (role ``rsa``)."""

import time
from concurrent.futures import ThreadPoolExecutor

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from refs.common import emit, load_key


def rsa_rate(args) -> None:
    key = load_key(args.key_file)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    data = b"x" * 200
    result = {"ev": "done", "bits": key.key_size}
    for threads in (1, 2):
        stop_at = time.monotonic() + args.seconds

        def spin(stop=stop_at) -> int:
            n = 0
            while time.monotonic() < stop:
                key.sign(data, pss, hashes.SHA256())
                n += 1
            return n

        t0 = time.monotonic()
        with ThreadPoolExecutor(threads) as pool:
            total = sum(pool.map(lambda _i: spin(), range(threads)))
        result[f"ops_per_s_{threads}_threads"] = total / (time.monotonic() - t0)
    emit(result)
