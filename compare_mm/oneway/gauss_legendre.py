"""The 256-point Gauss–Legendre rule on [−1, 1] that :mod:`compare_mm.oneway.theory` integrates with, stored.

``numpy.polynomial.legendre.leggauss(256)`` computes it from the eigenvalues of a 256 × 256 matrix, which
on a machine with several BLAS threads costs a quarter of a second or more of CPU (threads spin up for one
eigenproblem) — a tenth of ``compare-mm summarise``.  These are its values, bit for bit (little-endian
float64: the 256 nodes, then the 256 weights, base64); a test checks them against ``leggauss(256)``.
"""

from __future__ import annotations

import base64

import numpy as np

#: number of nodes
NODES = 256

_DATA = (
    "7ZqI1KP/77+p3cdgGv7vvyHn4JZW+++/Q4zBaVj377/ulrz7H/Lvvx8O936t6++/CX9uMgHk77/n92hhG9vvvy6CTGP80O+/cEOPm6TF7790za55"
    "FLnvv7W1KXlMq++/C9N5IU2c778MhA4GF4zvv768Rsaqeu+/Er5qDQlo778ZaaWSMlTvv+Mm/RgoP++/V2FMb+oo778wizlwehHvvxS2LgLZ+O6/"
    "ZbZQFwff7r+h1HWtBcTuv24MHM7Vp+6/dtlejniK7r9bkuwO72vuvxZS+3s6TO6/JnA9DVwr7r/ph9UFVQnuv5wPSrQm5u2/aH94ctLB7b8ECYil"
    "WZztv2rg2729de2/ExYFNwBO7b9iA7SXIiXtv69JqXEm++y/k2SmYQ3Q7L8N0F0P2aPsvxrDYi2Lduy/U38YeSVI7L9NNqG6qRjsv02FzMQZ6Ou/"
    "B4gFdXe2678Vg0CzxIPrv9sm6HEDUOu/kWvKrTUb678qBwVuXeXqv+J98cN8ruq/K84Qy5V26r/JuPaoqj3qv+ilNI29A+q/9ydEsdDI6b8fHXFY"
    "5ozpvy5ww88AUOm/ynnobSIS6b/UAhyTTdPov9PoEKmEk+i/WmXZIspS6L89+c58IBHov538eTyKzue/odR48AmL57/iz2Ywokbnv3mqwpxVAee/"
    "q7rU3ia75r8yx5SoGHTmvyGIj7QtLOa/bdPLxWjj5b8cdq+nzJnlvyy74y1cT+W/PKE5NBoE5b8EwI2eCbjkv7veq1gta+S/eDwyVogd5L+zi3SS"
    "Hc/jv/KhXhDwf+O/2txW2gIw47+wPSACWd/iv348vKD1jeK/AVRM1ts74r+NR/PJDunhvw0ktqmRleG/W/1cqmdB4b8faVMHlOzgv2S4iAIal+C/"
    "KfFP5PxA4L84En/2f9Tfv4fFITjNJd+/qBz/Quh13r/lnlDY18Tdv1vSz8SiEt2/zWJz4E9f3L8P2isO5qrbv3bsnzts9dq/BFzoYOk+2r/idEuA"
    "ZIfZv8cl+KXkzti//LbA53AV2L+VItVkEFvXv6QQfUXKn9a/+3nRuqXj1b9G9HX+qSbVvy2qUVLeaNS/MAJIAEqq078N9/BZ9OrSv1okUbjkKtK/"
    "LIqReyJq0b+BCrcKtajQv3pGs6ZHzc+/B8+2kuxHzr+Adj7NZ8HMv0ynflXIOcu/AP+GNR2xyb9GdK6BdSfIv7EX/1fgnMa/PHWh32wRxb8gnEdI"
    "KoXDv7jSl8kn+MG/PfyWonRqwL8AbCUyQLi9vwZkFvJymrq/Lqk5KKB7t7+uNdOB5lu0v5CfBLVkO7G/elc+/3I0rL/+KutLB/GlvzxYtsaHWZ+/"
    "EN9EwszPkr8kCQA2YxV5vyQJADZjFXk/EN9EwszPkj88WLbGh1mfP/4q60sH8aU/elc+/3I0rD+QnwS1ZDuxP64104HmW7Q/Lqk5KKB7tz8GZBby"
    "cpq6PwBsJTJAuL0/PfyWonRqwD+40pfJJ/jBPyCcR0gqhcM/PHWh32wRxT+xF/9X4JzGP0Z0roF1J8g/AP+GNR2xyT9Mp35VyDnLP4B2Ps1nwcw/"
    "B8+2kuxHzj96RrOmR83PP4EKtwq1qNA/LIqReyJq0T9aJFG45CrSPw338Fn06tI/MAJIAEqq0z8tqlFS3mjUP0b0df6pJtU/+3nRuqXj1T+kEH1F"
    "yp/WP5Ui1WQQW9c//LbA53AV2D/HJfil5M7YP+J0S4Bkh9k/BFzoYOk+2j927J87bPXaPw/aKw7mqts/zWJz4E9f3D9b0s/EohLdP+WeUNjXxN0/"
    "qBz/Quh13j+HxSE4zSXfPzgSf/Z/1N8/KfFP5PxA4D9kuIgCGpfgPx9pUweU7OA/W/1cqmdB4T8NJLapkZXhP41H88kO6eE/AVRM1ts74j9+PLyg"
    "9Y3iP7A9IAJZ3+I/2txW2gIw4z/yoV4Q8H/jP7OLdJIdz+M/eDwyVogd5D+73qtYLWvkPwTAjZ4JuOQ/PKE5NBoE5T8su+MtXE/lPxx2r6fMmeU/"
    "bdPLxWjj5T8hiI+0LSzmPzLHlKgYdOY/q7rU3ia75j95qsKcVQHnP+LPZjCiRuc/odR48AmL5z+d/Hk8is7nPz35znwgEeg/WmXZIspS6D/T6BCp"
    "hJPoP9QCHJNN0+g/ynnobSIS6T8ucMPPAFDpPx8dcVjmjOk/9ydEsdDI6T/opTSNvQPqP8m49qiqPeo/K84Qy5V26j/iffHDfK7qPyoHBW5d5eo/"
    "kWvKrTUb6z/bJuhxA1DrPxWDQLPEg+s/B4gFdXe26z9NhczEGejrP002obqpGOw/U38YeSVI7D8aw2Iti3bsPw3QXQ/Zo+w/k2SmYQ3Q7D+vSalx"
    "JvvsP2IDtJciJe0/ExYFNwBO7T9q4Nu9vXXtPwQJiKVZnO0/aH94ctLB7T+cD0q0JubtP+mH1QVVCe4/JnA9DVwr7j8WUvt7OkzuP1uS7A7va+4/"
    "dtlejniK7j9uDBzO1afuP6HUda0FxO4/ZbZQFwff7j8Uti4C2fjuPzCLOXB6Ee8/V2FMb+oo7z/jJv0YKD/vPxlppZIyVO8/Er5qDQlo7z++vEbG"
    "qnrvPwyEDgYXjO8/C9N5IU2c7z+1tSl5TKvvP3TNrnkUue8/cEOPm6TF7z8ugkxj/NDvP+f3aGEb2+8/CX9uMgHk7z8fDvd+revvP+6WvPsf8u8/"
    "Q4zBaVj37z8h5+CWVvvvP6ndx2Aa/u8/7ZqI1KP/7z/znlGSJJEdP2cn9f+aNDE/aNVEMPwHOz9NxukuU21CP2DbwGv7VUc/laETu8A9TD9urjys"
    "OJJQP/XDZEfuBFM/TtXKAul2VT9Y5x/IEOhXP2nRVY9NWFo/wLk7XIfHXD9sy/w9pjVfPw1wsSdJ0WA/9t+12xkHYj9UtANVOTxjP62idLSbcGQ/"
    "RHcxIjWkZT/yjyLO+dZmP3f6YPDdCGg/XMyoydU5aT9oisuj1WlqP2aGItLRmGs/oS4Bsr7GbD95ByerkPNtPzx+MTA8H28/c66G39okcD+O1LPw"
    "eLlwP5Ymj5ZyTXE/LSNYIsLgcT+/qdbrYXNyP6KMklFMBXM/tukKuXuWcz9ES+2O6iZ0P2VeTEeTtnQ/Oo3WXXBFdT/9LQxWfNN1P2F9dbuxYHY/"
    "JSzYIQvtdj9nw2wlg3h3Pw2RE2sUA3g/JFaJoLmMeD//kZt8bRV5P0mAXL8qnXk/zq5WMuwjej8vPsCorKl6P53Erf9mLns/+MZEHhayez+e2e31"
    "tDR8P9hWhoI+tnw/ea2Ryq02fT8ySWrf/bV9P6AQct0pNH4/uHFC7Cyxfj+aC9w+Ai1/P4bZ1ROlp38/g/3FWogQgD9r+iY9oEyAP4dLRuIXiIA/"
    "kKeDAe3CgD/Di3xYHf2APxBxIqumNoE/1cLQw4ZvgT8ZmWJzu6eBPzcwSJFC34E/mCKc+xkWgj82XjiXP0yCPz/ayk+xgYI/DAfqF222gj8K+yjp"
    "cOqCP0pdK8S6HYM/uAe5sEhQgz8EZdG9GIKDP4uDvgEps4M/U+gnmnfjgz/2ECWsAhOEP7WyT2TIQYQ/I63V9sZvhD/csoqf/JyEPzel+aFnyYQ/"
    "4ad1SQb1hD8E5Srp1h+FP4YEL9zXSYU/J1eRhQdzhT8CsWpQZJuFP/P27K/swoU/VVtyH5/phT/WSowieg+GP8sIEkV8NIY/DvkuG6RYhj8wmnBB"
    "8HuGP24q1FxfnoY/9/vTGvC/hj8rdXQxoeCGP7i7UF9xAIc/vA2na18fhz96wmQmaj2HPx/6MWiQWoc/+fJ8EtF2hz8cDIUPK5KHP/pvZVKdrIc/"
    "7WYf1ybGhz9xVKSixt6HP2la38J79oc/k6W+TkUNiD9SYDxmIiOIP7BNZzISOIg/vQlr5RNMiD/u8Ze6Jl+IPxayavZJcYg/BHiT5nyCiD+NzPzh"
    "vpKIP+gR0kgPoog/6aaFhG2wiD/ertYH2b2IP5d+1k5Ryog/WK3t3tXViD++yeBGZuCIP3Gz1B4C6og/nZdSCKnyiD8LkkuuWvqIP0bxG8UWAYk/"
    "ER6OCt0GiT85Jt1FrQuJPyXrtkeHD4k/gvI96moSiT/K2goRWBSJP5pyLalOFYk/mnItqU4ViT/K2goRWBSJP4LyPepqEok/Jeu2R4cPiT85Jt1F"
    "rQuJPxEejgrdBok/RvEbxRYBiT8LkkuuWvqIP52XUgip8og/cbPUHgLqiD++yeBGZuCIP1it7d7V1Yg/l37WTlHKiD/ertYH2b2IP+mmhYRtsIg/"
    "6BHSSA+iiD+NzPzhvpKIPwR4k+Z8gog/FrJq9klxiD/u8Ze6Jl+IP70Ja+UTTIg/sE1nMhI4iD9SYDxmIiOIP5Olvk5FDYg/aVrfwnv2hz9xVKSi"
    "xt6HP+1mH9cmxoc/+m9lUp2shz8cDIUPK5KHP/nyfBLRdoc/H/oxaJBahz96wmQmaj2HP7wNp2tfH4c/uLtQX3EAhz8rdXQxoeCGP/f70xrwv4Y/"
    "birUXF+ehj8wmnBB8HuGPw75LhukWIY/ywgSRXw0hj/WSowieg+GP1Vbch+f6YU/8/bsr+zChT8CsWpQZJuFPydXkYUHc4U/hgQv3NdJhT8E5Srp"
    "1h+FP+GndUkG9YQ/N6X5oWfJhD/csoqf/JyEPyOt1fbGb4Q/tbJPZMhBhD/2ECWsAhOEP1PoJ5p344M/i4O+ASmzgz8EZdG9GIKDP7gHubBIUIM/"
    "Sl0rxLodgz8K+yjpcOqCPwwH6hdttoI/P9rKT7GBgj82XjiXP0yCP5ginPsZFoI/NzBIkULfgT8ZmWJzu6eBP9XC0MOGb4E/EHEiq6Y2gT/Di3xY"
    "Hf2AP5CngwHtwoA/h0tG4heIgD9r+iY9oEyAP4P9xVqIEIA/htnVE6Wnfz+aC9w+Ai1/P7hxQuwssX4/oBBy3Sk0fj8ySWrf/bV9P3mtkcqtNn0/"
    "2FaGgj62fD+e2e31tDR8P/jGRB4Wsns/ncSt/2Yuez8vPsCorKl6P86uVjLsI3o/SYBcvyqdeT//kZt8bRV5PyRWiaC5jHg/DZETaxQDeD9nw2wl"
    "g3h3PyUs2CEL7XY/YX11u7Fgdj/9LQxWfNN1PzqN1l1wRXU/ZV5MR5O2dD9ES+2O6iZ0P7bpCrl7lnM/ooySUUwFcz+/qdbrYXNyPy0jWCLC4HE/"
    "liaPlnJNcT+O1LPweLlwP3Ouht/aJHA/PH4xMDwfbz95ByerkPNtP6EuAbK+xmw/ZoYi0tGYaz9oisuj1WlqP1zMqMnVOWk/d/pg8N0IaD/yjyLO"
    "+dZmP0R3MSI1pGU/raJ0tJtwZD9UtANVOTxjP/bftdsZB2I/DXCxJ0nRYD9sy/w9pjVfP8C5O1yHx1w/adFVj01YWj9Y5x/IEOhXP07VygLpdlU/"
    "9cNkR+4EUz9urjysOJJQP5WhE7vAPUw/YNvAa/tVRz9NxukuU21CP2jVRDD8Bzs/Zyf1/5o0MT/znlGSJJEdPw=="
)


def legendre_rule() -> tuple[np.ndarray, np.ndarray]:
    """(nodes, weights) of the 256-point Gauss–Legendre rule on [−1, 1], as ``leggauss(NODES)`` gives them."""
    v = np.frombuffer(base64.b64decode("".join(_DATA)), dtype="<f8").astype(float)
    return v[:NODES].copy(), v[NODES:].copy()


__all__ = ["NODES", "legendre_rule"]
