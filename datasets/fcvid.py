"""FCVID with the VGG16 frame features of the SSVH papers: the database is also the query set."""

from ssvh_bench import FileDataset, FileLayout, FileSplit, register_dataset


@register_dataset("fcvid", description="FCVID: 45,585 training / 45,600 database videos, 25 x 4096 VGG16, "
                                       "239 classes; queries = database")
class FCVID(FileDataset):
    """FCVID: queries are the 45,600 database videos themselves (each stays in its own ranking)."""

    layout = FileLayout(
        name="fcvid",
        train=FileSplit(("fcv_train_feats.h5",)),
        database=FileSplit(("fcv_test_feats.h5",), ("fcv_test_labels.mat",), "labels"),
        query=None,
        disk_gb=37.4,  # videos x frames x dim x 4 bytes over all splits
    )
