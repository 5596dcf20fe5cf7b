"""Search attributes support staff filter lifecycles by: ids and stages, never personal data."""

from temporalio.common import SearchAttributeKey

SHOP_ID = SearchAttributeKey.for_keyword("ShopId")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
CREATOR_CODE = SearchAttributeKey.for_keyword("CreatorCode")
LIFECYCLE_STAGE = SearchAttributeKey.for_keyword("LifecycleStage")

ALL = (SHOP_ID, CUSTOMER_ID, CREATOR_CODE, LIFECYCLE_STAGE)
