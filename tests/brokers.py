"""Pytest fixtures for real brokers on loopback (loaded from conftest via ``pytest_plugins``)."""

from __future__ import annotations

import pytest

from tests.kafka_broker import KafkaBroker, MotoS3


@pytest.fixture(scope="session")
def kafka_broker():
    """One tansu broker (memory storage) shared by the session; tests use unique topic names."""
    with KafkaBroker() as broker:
        yield broker


@pytest.fixture()
def durable_kafka_broker():
    """A tansu broker storing to S3 (moto_server on loopback): survives `KafkaBroker.restart`."""
    with MotoS3() as s3, KafkaBroker(storage=s3.tansu_storage(), env=s3.env()) as broker:
        yield broker
