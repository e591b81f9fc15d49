"""The price channel's parts: the price a review states, the price a product lists, and how close they are."""

import numpy as np
import pytest

from ameli_ray.kb.assets import EntityTable
from ameli_ray.retrieval.price import closeness, listed_prices, stated_price
from ameli_ray.schema import Entity, entities_to_table


@pytest.mark.parametrize(("text", "price"), [
    ("manufacturer: sage software. price: 599.99. save $50 with the rebate", 599.99),  # the label first
    ("brand: tripp lite. modelno: u222-004-r. price: 23.37.", 23.37),  # a sentence's full stop is not a decimal
    ("Paid $12 for it.", 12.0),
    ("At $1,299.99 it was a fair deal.", 1299.99),
    ("the price is 1,200 and worth it", 1200.0),
    ("cost me 30 dollars", 30.0),
    ("USD 45.5 at the shop", 45.5),
    ("I expected better for the price. 2 stars", None),  # "price" with no amount after it
    ("model 1234, 256GB, 2 years old", None),  # numbers that are no price
    ("price: 0. free with the bundle", None),  # 0 is "unknown" in the entity-matching tables
    ("", None),
])
def test_a_review_states_a_price_labelled_or_in_a_currency(text, price):
    assert stated_price(text) == price


def test_a_products_price_is_its_first_readable_price_key_read_from_its_table_or_its_kb():
    entities = [
        Entity(id="a", name="a", attributes={"brand": "x", "Price": "$1,299.99", "msrp": "1500"}),
        Entity(id="b", name="b"),
        Entity(id="c", name="c", attributes={"price": "n/a", "list price": "12 USD"}),  # the first readable one
        Entity(id="d", name="d", attributes={"price": "0"}),
        Entity(id="e", name="e", attributes={"colour": "red"}),
    ]
    expected = np.asarray([1299.99, np.nan, 12.0, np.nan, np.nan], np.float32)
    table = entities_to_table(entities)
    np.testing.assert_array_equal(listed_prices(table), expected)
    # a slice of a table (a loaded KB's rows need not start at 0)
    np.testing.assert_array_equal(listed_prices(table.slice(2, 3)), expected[2:])
    np.testing.assert_array_equal(listed_prices(EntityTable(table).table), expected)


def test_closeness_is_one_at_the_stated_price_and_zero_at_span_times_more_or_less():
    got = closeness(100.0, np.asarray([100.0, 150.0, 300.0, 1 / 3 * 100, 1000.0, np.nan]), span=3.0)
    assert got[0] == 1.0 and 0.6 < got[1] < 0.65  # 1 - ln(1.5)/ln(3)
    assert got[2] == pytest.approx(0.0, abs=1e-9) and got[3] == pytest.approx(0.0, abs=1e-9) and got[4] == 0.0
    assert np.isnan(got[5])
    # symmetric in log-price: twice as dear scores as half as dear
    assert closeness(10.0, np.asarray([20.0]), 3.0)[0] == pytest.approx(closeness(10.0, np.asarray([5.0]), 3.0)[0])
