"""Entities of the loyalty repository."""

from feast import Entity, ValueType

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="A Xiva customer (UUID); the same id in Xiva and the DWH.",
)
