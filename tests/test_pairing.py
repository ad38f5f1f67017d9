"""A test that catches pairing bugs: trained on an easy SynthM2M (difficulty 0: every picture factor follows its
music exactly), the two towers must find the held-out pairs far above chance; trained with the music shuffled
against the videos (every other piece of the pipeline unchanged), they must stay at chance on the same pools.

A bug that misaligns videos and music anywhere between the generator and the loss (the pairs file, prepare's
records, the cache rows, the datasets, the batch, InfoNCE's targets, the evaluation's groups) fails the first
half; a leak of the answer into the evaluation (e.g. pools overlapping training, a score that sees the ids)
fails the second.
"""
import numpy as np
import pytest
import torch

TINY = dict(image_size=16, patch_size=4, clips=4, embed_dim=48, depth=1, num_heads=4,
            decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)


@pytest.fixture(scope='module')
def easy_cache(tmp_path_factory):
    from cmmixer.synth_m2m import SynthConfig, generate
    from cmmixer.cache import prepare
    from cmmixer.media import MediaConfig
    root = tmp_path_factory.mktemp('easy')
    # about one video per track, so the test pool holds ~70 tracks (chance R@10 ~ 9 %)
    generate(root / 'synth', SynthConfig(videos=600, tracks=460, seed=5, difficulty=0.0, duration=3.0, image_size=32,
                                         fps=4.0, clips=4), workers=2, progress=False)
    prepare(root / 'synth', root / 'cache', MediaConfig(clips=4, image_size=16), workers=2, progress=False)
    return root / 'cache'


def _train_and_evaluate(cache, out, shuffle_audio):
    from cmmixer.retrieval import Retriever, RetrieverConfig, finetune, finetune_config, evaluate
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = Retriever(RetrieverConfig(mae=TINY, proj_dim=32), seed=0)
    cfg = finetune_config('smoke', epochs=32, seed=0, out_dir=str(out), lr=3e-3, progress=False, device='cpu')
    finetune(model, cache, cfg, shuffle_audio=shuffle_audio)
    return evaluate(model, cache, split='test', device='cpu')


def test_easy_cache_holds_the_pools(easy_cache):
    "The cache the two trainings share: every split present, and a test pool of tracks where 3x chance means something."
    from cmmixer.cache import Cache
    m = Cache(easy_cache).manifest
    tracks = m.groupby('split').audio.nunique().to_dict()
    assert set(tracks) == {'train', 'val', 'test'} and tracks['test'] >= 50 and tracks['train'] > tracks['test'], tracks
    assert not set(m.audio[m.split == 'test']) & set(m.audio[m.split == 'train'])      # test tracks unseen in training


@pytest.fixture(scope='module')
def paired(easy_cache, tmp_path_factory):
    "The towers trained on the true pairs, evaluated on the test pools."
    return _train_and_evaluate(easy_cache, tmp_path_factory.mktemp('paired'), shuffle_audio=False)


def test_pairs_are_learned(paired):
    ok = paired
    chance = ok['chance_v2m']['R@10']
    assert ok['v2m']['N'] >= 50, ok['pool']                                   # a pool where 3x chance is meaningful
    assert ok['v2m']['R@10'] >= 3 * chance, (ok['v2m'], chance)               # the pairing is learned
    assert ok['m2v']['R@10'] >= 3 * ok['chance_best_of_m2v']['R@10'], (ok['m2v'], ok['chance_best_of_m2v'])


def test_shuffled_pairs_are_not(easy_cache, paired, tmp_path):
    "The same training with the music shuffled against the videos: within chance's binomial spread on both sides."
    bad = _train_and_evaluate(easy_cache, tmp_path / 'shuffled', shuffle_audio=True)
    for d, ch in (('v2m', paired['chance_v2m']), ('m2v', paired['chance_best_of_m2v'])):
        p, n = ch['R@10'] / 100, bad[d]['queries']
        assert abs(bad[d]['R@10'] / 100 - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-9, (d, bad[d], ch)
