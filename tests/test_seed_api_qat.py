"The seed's QAT calls (its `run_complete_pipeline` step 5), as the seed wrote them, on quantnb, with tiny data."
import copy
import warnings

import torch

from quantnb.models import SampleNet
from quantnb.qat import QATProcessor

warnings.filterwarnings('ignore', category=UserWarning)


def loader(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g)) for _ in range(n)]


def test_seed_qat_calls():
    torch.manual_seed(0)
    trained_model, train_loader, test_loader = SampleNet().eval(), loader(2, 0), loader(1, 1)
    qat_processor = QATProcessor()
    assert qat_processor.supported_dtypes == [torch.qint8]
    qat_model, qat_optimizer = qat_processor.prepare_qat_model(
        copy.deepcopy(trained_model),
        torch.optim.Adam(trained_model.parameters(), lr=0.001)
    )
    assert type(qat_optimizer) is torch.optim.Adam and qat_optimizer.param_groups[0]['lr'] == 0.001  # the seed turned it into SGD
    qat_model, qat_history = qat_processor.train_with_qat(
        qat_model, qat_optimizer, train_loader, test_loader, epochs=5
    )
    assert all(len(qat_history[k]) == 5 for k in ('train_loss', 'train_acc', 'val_loss', 'val_acc'))
    assert all(0 <= a <= 1 for a in qat_history['train_acc'] + qat_history['val_acc'])
    qat_quantized = qat_processor.convert_to_quantized(qat_model)
    with torch.no_grad(): out = qat_quantized(test_loader[0][0])
    assert out.shape == (16, 10) and out.dtype == torch.float32
