"""Numbers the simulator is calibrated on, measured once from the real files in ../shared/data.

They are kept here as numbers so that the simulator never reads those files at run time.

- ``HOURLY_SHAPE``: share of uses per hour of day (per mille) for app categories, from
  ``netfp/data0117_dev.csv`` (1,203 real devices, one day), with its Chinese categories mapped
  to the Tsinghua names (通讯聊天 -> Social_Networking, 视频服务 -> Entertainment, 游戏服务 -> Games,
  电子商务 -> Shopping, 综合资讯 -> News, 金融理财 -> Finance, 便捷生活 + 美食外卖 -> Lifestyle,
  旅行预订 -> Travel, 音乐音频 -> Music, 健康医疗 -> Health&Fitness, 实用工具 -> Utilities,
  电子阅读 -> Books, 办公管理 -> Business). Categories without a counterpart use ``ALL_APPS``.
- ``STATION_PROTOTYPES``: mean POI shares of the eight k-means clusters (k = 8, seed 0) of the
  9,415 base stations with POIs in ``tsinghua/base_poi.txt``, and their median POI count.
"""

from __future__ import annotations

POI_TYPES = [
    "Medical care", "Hotel", "Business affairs", "Life service", "Transportation hub",
    "Culture", "Sports", "Residence", "Entertainment and leisure", "Scenic spot", "Government",
    "Factory", "Shopping", "Restaurant", "Education", "Landmark", "Other",
]

# The 20 app categories of the Tsinghua dataset (Categorys.txt, cleaned).
APP_CATEGORIES = [
    "Utilities", "Games", "Entertainment", "News", "Social_Networking", "Shopping", "Finance",
    "Business", "Travel", "Lifestyle", "Education", "Health&Fitness", "infant&mom",
    "Navigation", "Weather", "Music", "References", "Books", "Photo&Video", "sports",
]

ALL_APPS = [12, 8, 7, 7, 5, 5, 14, 29, 48, 60, 64, 70, 66, 65, 62, 60, 57, 60, 68, 61, 58, 45,
            38, 30]

HOURLY_SHAPE = {
    "Books": [23, 1, 17, 1, 1, 2, 19, 63, 30, 62, 43, 35, 60, 30, 271, 105, 20, 17, 29, 19, 25,
              14, 57, 54],
    "Business": [63, 31, 16, 4, 2, 2, 12, 15, 15, 78, 78, 40, 63, 42, 79, 140, 132, 44, 22, 12,
                 40, 44, 17, 7],
    "Entertainment": [17, 7, 3, 13, 3, 3, 10, 17, 37, 70, 65, 42, 56, 51, 48, 48, 46, 49, 74, 75,
                      76, 53, 65, 73],
    "Finance": [15, 9, 14, 9, 6, 8, 17, 34, 62, 56, 76, 87, 73, 64, 76, 63, 60, 65, 51, 47, 50,
                29, 20, 9],
    "Games": [14, 9, 23, 4, 4, 10, 27, 35, 65, 69, 41, 45, 77, 65, 65, 63, 50, 43, 50, 70, 45, 44,
              31, 51],
    "Health&Fitness": [11, 5, 8, 5, 4, 6, 13, 36, 53, 45, 51, 70, 54, 70, 58, 68, 56, 114, 87,
                       60, 39, 42, 29, 16],
    "Lifestyle": [11, 3, 5, 3, 3, 4, 10, 20, 45, 59, 81, 112, 69, 85, 73, 46, 47, 70, 79, 48, 51,
                  32, 23, 20],
    "Music": [0, 3, 8, 0, 7, 7, 13, 60, 50, 40, 59, 28, 53, 82, 106, 71, 51, 46, 62, 93, 35, 62,
              34, 29],
    "News": [10, 19, 10, 26, 16, 2, 12, 34, 67, 53, 42, 41, 99, 75, 51, 87, 99, 62, 61, 38, 30,
             17, 26, 21],
    "Shopping": [10, 5, 9, 2, 7, 7, 9, 30, 37, 90, 58, 78, 97, 23, 83, 26, 41, 52, 84, 46, 80,
                 36, 63, 29],
    "Social_Networking": [11, 8, 7, 4, 4, 5, 13, 32, 50, 57, 59, 68, 64, 66, 60, 62, 59, 62, 67,
                          68, 62, 51, 40, 23],
    "Travel": [4, 19, 3, 4, 1, 3, 11, 54, 98, 34, 52, 95, 77, 82, 60, 50, 65, 57, 147, 19, 39, 7,
               13, 6],
    "Utilities": [14, 12, 10, 11, 6, 10, 20, 29, 44, 65, 80, 78, 58, 59, 61, 68, 62, 56, 62, 49,
                  51, 44, 29, 23],
}

# name -> (median POI count, POI shares in POI_TYPES order)
STATION_PROTOTYPES = {
    "residential": (20, [0.008, 0.016, 0.033, 0.01, 0.001, 0.004, 0.009, 0.776, 0.004, 0.005,
                         0.021, 0.003, 0.034, 0.017, 0.023, 0.01, 0.027]),
    "residential_mixed": (35, [0.02, 0.042, 0.114, 0.029, 0.003, 0.011, 0.021, 0.422, 0.014,
                               0.012, 0.053, 0.013, 0.084, 0.053, 0.042, 0.019, 0.048]),
    "business": (37, [0.004, 0.009, 0.71, 0.024, 0.002, 0.004, 0.005, 0.024, 0.003, 0.004,
                      0.022, 0.053, 0.027, 0.012, 0.005, 0.048, 0.044]),
    "business_mixed": (35, [0.013, 0.029, 0.4, 0.034, 0.003, 0.013, 0.015, 0.083, 0.011, 0.014,
                            0.052, 0.06, 0.066, 0.035, 0.018, 0.075, 0.078]),
    "civic": (15, [0.055, 0.061, 0.093, 0.023, 0.013, 0.035, 0.054, 0.101, 0.019, 0.023, 0.14,
                   0.028, 0.041, 0.033, 0.095, 0.036, 0.152]),
    "shopping_dining": (47, [0.02, 0.043, 0.112, 0.061, 0.005, 0.013, 0.022, 0.12, 0.031, 0.017,
                             0.03, 0.009, 0.244, 0.199, 0.025, 0.009, 0.039]),
    "scenic": (8, [0.007, 0.011, 0.045, 0.018, 0.023, 0.021, 0.02, 0.034, 0.03, 0.667, 0.015,
                   0.006, 0.018, 0.025, 0.007, 0.027, 0.024]),
    "landmark": (11, [0.01, 0.005, 0.133, 0.009, 0.003, 0.009, 0.005, 0.029, 0.004, 0.016,
                      0.034, 0.057, 0.015, 0.003, 0.005, 0.586, 0.076]),
}
