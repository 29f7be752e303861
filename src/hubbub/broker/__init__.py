"""Brokers: the engines behind cluster-wide hub operations (memory, redis)."""

from hubbub.broker.base import Broker, Member, Publication, Registration
from hubbub.broker.memory import MemoryBroker, MemoryBus

__all__ = ["Broker", "Member", "MemoryBroker", "MemoryBus", "Publication", "Registration"]
