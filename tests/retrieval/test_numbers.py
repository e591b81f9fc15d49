"""The numbers channel's index: which numbers each product's name has, and the share of a review name's numbers it finds."""

import numpy as np

from ameli_ray.retrieval.numbers import NameNumbers, number_keys


def test_numbers_are_read_as_numbers():
    assert number_keys("Norton AntiVirus 2007") == {"2007"}
    assert number_keys("nero 7.0 ultra edition, v07") == {"7"}  # 7.0, 07 and 7 are one number
    assert number_keys("instant immersion french 2.5 (win 95 98)") == {"2.5", "95", "98"}
    assert number_keys("") == set() and number_keys("no digits here") == set()
    # codes longer than a float holds stay apart
    assert number_keys("upc 12345678901234567890 and 12345678901234567891") == {"12345678901234567890", "12345678901234567891"}
    assert number_keys("0.50 or 00.5 or 0") == {"0.5", "0"}


def test_the_share_of_the_reviews_numbers_each_products_name_has():
    names = [
        "symantec norton anti-virus 2007 windows",
        "norton antivirus 2004",
        "computrace lojack for laptops - 3 yr subscription",
        "computrace lojack for laptops - 1 year license (win 2000 xp)",
        "a product with no number",
    ]
    index = NameNumbers(names)
    assert len(index) == 5
    np.testing.assert_array_equal(index.shared({"2007"}, np.arange(5)), [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(index.shared({"3", "2000"}, np.asarray([3, 2, 4])), [0.5, 0.5, 0])  # any rows, any order
    np.testing.assert_array_equal(index.shared({"31337"}, np.arange(5)), np.zeros(5))  # a number no product has
    assert index.shared({"2007"}, np.zeros(0, np.int64)).shape == (0,)
