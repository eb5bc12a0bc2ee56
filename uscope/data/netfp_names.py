"""English names for the Chinese app and category names of the netfp file.

The bundled English models (all-MiniLM-L6-v2, SmolLM2) cannot read Chinese, so
``read_netfp(..., language="en")`` replaces each name with the gloss below (the app's own
Latin-script brand where it has one). A name missing here is kept as it is and reported.
"""

from __future__ import annotations

CATEGORIES_EN = {
    "个人工具": "Personal tools", "亲子服务": "Parenting", "便捷生活": "Daily life services",
    "健康医疗": "Health & medical", "办公管理": "Office & productivity", "实用工具": "Utilities",
    "拍摄美化": "Photo & beauty", "旅行预订": "Travel booking", "汽车服务": "Car services",
    "游戏服务": "Games", "电子商务": "Online shopping", "电子阅读": "E-books",
    "社交网络": "Social networks", "综合资讯": "News", "美食外卖": "Food & delivery",
    "视频服务": "Video streaming", "通讯聊天": "Messaging", "金融理财": "Finance & payments",
    "音乐音频": "Music & audio",
}

APPS_EN = {
    "58同城": "58.com classifieds", "Keep": "Keep fitness", "QQ": "QQ", "QQ空间": "Qzone",
    "一号店": "Yhd shop", "中华万年历": "Chinese calendar", "京东商城": "JD.com",
    "今日头条": "Toutiao news", "卷皮": "Juanpi deals", "去哪儿旅行网": "Qunar travel",
    "咕咚运动": "Codoon running", "墨迹天气": "Moji weather", "大众点评网": "Dianping reviews",
    "大智慧": "DZH stocks", "太平洋汽车": "PCauto", "宝宝树孕育": "Babytree pregnancy",
    "平安好医生": "Ping An Good Doctor", "开心消消乐": "Happy Elimination game",
    "微信": "WeChat", "掌阅书城": "iReader books", "探探": "Tantan dating",
    "搜狗输入法": "Sogou keyboard", "携程旅行": "Ctrip travel", "支付宝": "Alipay",
    "新浪微博": "Sina Weibo", "易车": "Bitauto cars", "柚宝宝孕育": "Youbaobao pregnancy",
    "汽车之家": "Autohome cars", "洋码头": "Ymatou cross-border shop", "爱奇艺": "iQIYI video",
    "百度云": "Baidu cloud drive", "百度地图": "Baidu Maps", "百度搜索": "Baidu search",
    "网易严选": "NetEase Yanxuan shop", "网易云音乐": "NetEase Cloud Music",
    "网易新闻": "NetEase News", "美柚": "Meiyou period tracker", "美颜相机": "BeautyCam",
    "聚美优品": "Jumei beauty shop", "腾讯视频": "Tencent Video", "苏宁": "Suning shop",
    "蘑菇街": "Mogujie fashion shop", "贪吃蛇大作战": "Snake battle game",
    "追书神器": "Zhuishu novel reader", "酷狗音乐": "Kugou Music",
    "金山WPS OFFICE手机版": "WPS Office", "钉钉": "DingTalk", "铁路12306": "China Railway 12306",
    "饿了么": "Ele.me food delivery", "驴妈妈": "Lvmama travel", "驾考宝典": "Driving test prep",
    "高德地图": "Amap maps",
}
