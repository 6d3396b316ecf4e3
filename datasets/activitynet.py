"""ActivityNet with the ResNet-50 frame features of the SSVH papers: 1,000 separate queries."""

from ssvh_bench import FileDataset, FileLayout, FileSplit, register_dataset


@register_dataset("activitynet", description="ActivityNet: 9,722 training / 3,758 database / 1,000 query "
                                             "videos, 30 x 2048 ResNet-50, 200 classes")
class ActivityNet(FileDataset):
    """ActivityNet: database ``test_feats`` with ``re_label``, queries ``query_feats`` with ``q_label``."""

    layout = FileLayout(
        name="activitynet",
        train=FileSplit(("train_feats.h5",)),
        database=FileSplit(("test_feats.h5",), ("re_label.mat",), "re_label"),
        query=FileSplit(("query_feats.h5",), ("q_label.mat",), "q_label"),
        disk_gb=3.6,  # videos x frames x dim x 4 bytes over all splits
    )
